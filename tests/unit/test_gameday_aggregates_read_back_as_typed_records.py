"""A game day's aggregate journal (`chaos.gameday/v1`) as typed records: the aggregates the code
wrote before the records existed (tests/fixtures/gamedays: one stopped early with a skipped
experiment, one with a parallel group, one captured while running) read back into a
`GameDayRecord` and out again key for key, in order; unknown keys are kept; a damaged one is
refused naming the file and the field; the writer writes what it always wrote; and a report
reads the aggregate's experiments through the record."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chaos.gameday.run import GameDayRun
from chaos.model.gameday import load_gameday
from chaos.records import GameDayRecord, RunRecord
from chaos.reports import collection

GAMEDAYS = Path(__file__).resolve().parent.parent / "fixtures" / "gamedays"
NAMES = ["stopped", "parallel", "running"]


def aggregate(name: str) -> tuple[Path, dict[str, Any]]:
    path = GAMEDAYS / name / "gameday.json"
    return path, json.loads(path.read_text())


def text(document: Any) -> str:
    return json.dumps(document, indent=2)


@pytest.mark.parametrize("name", NAMES)
def test_an_aggregate_reads_back_and_writes_out_byte_for_byte(name: str) -> None:
    path, document = aggregate(name)
    record = GameDayRecord.from_json(document, str(path))
    assert text(record.to_json()) == text(document)
    assert GameDayRecord.of(record) is record


def test_the_record_reads_every_field_by_name() -> None:
    _, document = aggregate("stopped")
    record = GameDayRecord.from_json(document)
    assert (record.title, record.owners, record.stop_on, record.exit_code) == (
        "Typed aggregate fixture", ("team-a", "team-b"), "first_failure", 3)
    assert record.schedule is not None and (record.schedule.cron, record.schedule.timezone) \
        == ("0 9 * * 1", "Europe/Berlin")
    assert record.tool is not None and record.tool.name == "chaos"
    assert record.score is None and record.stopped and "first_failure" in record.stopped
    assert [(e.index, e.status, e.weight, e.exit_code, e.verdict) for e in record.experiments] \
        == [(1, "done", 2, 0, "held"), (2, "done", 1, 3, "steady-state-not-met"),
            (3, "skipped", 1, None, None)]
    skipped = record.experiments[2]
    assert skipped.skipped and skipped.skipped.startswith("the game day stopped early")
    assert skipped.title == "A sleeper is suspended for a second" and skipped.journal is None
    assert dict(record.reports)["junit"] == "junit.xml"


def test_a_parallel_group_is_one_step_and_keeps_its_vars() -> None:
    _, document = aggregate("parallel")
    record = GameDayRecord.from_json(document)
    assert [(e.step, e.parallel, e.weight) for e in record.experiments] == [
        (0, True, 1), (0, True, 3), (1, False, 1)]
    assert list(record.experiments[1].vars) == ["pid"] and record.score == 100.0


UNKNOWN: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = [
    ("top", lambda d: d),
    ("experiment", lambda d: d["experiments"][0]),
    ("schedule", lambda d: d["schedule"]),
    ("tool", lambda d: d["tool"]),
]


@pytest.mark.parametrize("where,part", UNKNOWN, ids=[w for w, _ in UNKNOWN])
def test_keys_a_newer_chaos_adds_are_kept_in_place(
        where: str, part: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    _, document = aggregate("stopped")
    changed = copy.deepcopy(document)
    target = part(changed)
    items = list(target.items())
    target.clear()
    target.update(items[:1] + [("added_later", {"n": [1, 2]})] + items[1:])
    assert text(GameDayRecord.from_json(changed).to_json()) == text(changed)


def damage(document: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        document = document[int(key)] if isinstance(document, list) else document[key]
    if value is DROP:
        del document[last]
    elif isinstance(document, list):
        document[int(last)] = value
    else:
        document[last] = value


DROP = object()
DAMAGED = [
    ("experiments", {}, "experiments"), ("experiments", DROP, "experiments"),
    ("experiments.1", "refused.yaml", "experiments[1]"),
    ("experiments.0.file", DROP, "experiments[0].file"),
    ("experiments.2.status", None, "experiments[2].status"),
    ("experiments.1.weight", "2", "experiments[1].weight"),
    ("experiments.0.journal", 1, "experiments[0].journal"),
    ("experiments.0.parallel", "no", "experiments[0].parallel"),
    ("experiments.0.vars", ["pid"], "experiments[0].vars"),
    ("owners.1", 7, "owners[1]"), ("owners", "team-a", "owners"),
    ("schedule", "0 9 * * 1", "schedule"), ("schedule.cron", 9, "schedule.cron"),
    ("tool.version", 1, "tool.version"), ("score", "high", "score"),
    ("exit_code", 3.5, "exit_code"), ("reports.html", 3, "reports.html"),
    ("title", ["a"], "title"), ("started", True, "started"),
]


@pytest.mark.parametrize("path,value,field", DAMAGED, ids=[d[0] for d in DAMAGED])
def test_a_damaged_aggregate_is_refused_naming_the_file_and_the_field(
        path: str, value: Any, field: str) -> None:
    _, document = aggregate("stopped")
    changed = copy.deepcopy(document)
    damage(changed, path, value)
    with pytest.raises(ValueError) as refused:
        GameDayRecord.from_json(changed, "out/gd/gameday.json")
    assert str(refused.value) == ("out/gd/gameday.json is a damaged chaos game-day journal: "
                                  f"{field} missing or of the wrong type")


@pytest.mark.parametrize("document", [[], {"schema": "chaos.journal/v1"}, {"title": "x"}])
def test_what_is_no_aggregate_is_refused_as_such(document: Any) -> None:
    with pytest.raises(ValueError, match="^gd.json is not a chaos game-day journal"):
        GameDayRecord.from_json(document, "gd.json")


def test_a_report_reads_the_aggregates_experiments_through_the_record(tmp_path: Path) -> None:
    shutil.copytree(GAMEDAYS / "stopped", tmp_path / "gd")
    loaded = collection.load([tmp_path / "gd" / "gameday.json"])
    assert loaded.title == "Typed aggregate fixture" and loaded.owners == ("team-a", "team-b")
    assert [(e.label, e.weight, e.skipped, e.title) for e in loaded.entries] == [
        ("suspend.yaml", 2, "", ""), ("refused.yaml", 1, "", ""),
        ("suspend.yaml", 1, "the game day stopped early: refused.yaml failed with exit 3 "
         "(stop_on: first_failure)", "A sleeper is suspended for a second")]
    first, second, _ = loaded.entries
    assert isinstance(first.journal, RunRecord) and first.journal.verdict == "held"
    assert second.path == tmp_path / "gd" / "02-refused" / "journal.json"
    assert loaded.gameday == aggregate("stopped")[1]


def test_a_report_of_a_damaged_aggregate_names_it(tmp_path: Path) -> None:
    shutil.copytree(GAMEDAYS / "stopped", tmp_path / "gd")
    path = tmp_path / "gd" / "gameday.json"
    document = json.loads(path.read_text())
    document["experiments"][1]["weight"] = "heavy"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=f"^{path} is a damaged chaos game-day journal: "
                                         r"experiments\[1\].weight"):
        collection.load([path])


def test_a_running_game_day_is_reported_with_nothing_run(tmp_path: Path) -> None:
    path, _ = aggregate("running")
    entries = collection.from_gameday(json.loads(path.read_text()), path.parent, str(path))
    assert [(e.journal, e.skipped, e.weight) for e in entries] == [
        (None, "not run", 2), (None, "not run", 1), (None, "not run", 1)]


GAMEDAY = """\
title: Typed aggregate fixture
description: Two experiments run, the third is skipped after a failure.
owners: [team-a, team-b]
schedule: {cron: "0 9 * * 1", timezone: Europe/Berlin}
experiments:
  - {file: suspend.yaml, weight: 2}
  - refused.yaml
  - suspend.yaml
stop_on: first_failure
"""
EXPERIMENT = """\
title: %s
faults:
  - {type: process.suspend, target: {process: {name: nothing-real}}, duration: 1s}
"""


def writer(tmp_path: Path) -> GameDayRun:
    for name in ("suspend", "refused"):
        (tmp_path / f"{name}.yaml").write_text(EXPERIMENT % name)
    (tmp_path / "gameday.yaml").write_text(GAMEDAY)
    run = GameDayRun(load_gameday(tmp_path / "gameday.yaml"), tmp_path / "out")
    run.started = 1_796_425_889.5
    return run


def shape(document: Any) -> Any:
    """The keys, in order, all the way down (the values differ between runs)."""
    if isinstance(document, dict):
        return [(k, shape(v)) for k, v in document.items()]
    if isinstance(document, list):
        return [shape(v) for v in document]
    return type(document).__name__


def test_the_writer_writes_the_aggregate_it_always_wrote_when_starting(tmp_path: Path) -> None:
    written = writer(tmp_path).document().to_json()
    _, before = aggregate("running")
    assert shape(written) == shape(before)
    same = ("schema", "title", "owners", "description", "tool", "schedule", "stop_on",
            "finished", "exit_code", "score", "reports")
    assert {k: written[k] for k in same} == {k: before[k] for k in same}
    ignore = ("path",)
    assert [{k: v for k, v in e.items() if k not in ignore} for e in written["experiments"]] \
        == [{k: v for k, v in e.items() if k not in ignore} for e in before["experiments"]]


def test_the_writer_writes_the_aggregate_it_always_wrote_when_done(tmp_path: Path) -> None:
    run = writer(tmp_path)
    _, before = aggregate("stopped")
    for slot, was in zip(run.slots, before["experiments"]):
        slot.status, slot.exit_code, slot.skipped = was["status"], was["exit_code"], \
            was["skipped"] or ""
        slot.started, slot.finished = was["started"], was["finished"]
        slot.summary = {k: was[k] for k in ("run", "verdict", "title", "reason") if k in was}
    run.finished, run.stopped, run.reports = before["finished"], before["stopped"], \
        dict(before["reports"])
    written = run.document(3, None).to_json()
    assert shape(written) == shape(before)
    own = ("gameday", "source", "host", "sha256", "started", "duration")
    assert {k: v for k, v in written.items() if k not in own + ("experiments",)} == {
        k: v for k, v in before.items() if k not in own + ("experiments",)}
    assert [{k: v for k, v in e.items() if k != "path"} for e in written["experiments"]] == [
        {k: v for k, v in e.items() if k != "path"} for e in before["experiments"]]
