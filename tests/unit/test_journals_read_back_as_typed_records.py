"""The journal as typed records: every journal chaos writes reads back into a `RunRecord` and
out again key for key, in order (fixtures written by the code before the records existed: a
run that held, one that failed, an error journal, a Chaos Toolkit run, and one built from events
covering every part); a damaged journal is refused naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaos.records import RunRecord
from chaos.records.journal import CHECK_KEYS, FINE_SECONDS, CheckVerdict
from chaos.runner import journal
from chaos.slo.checks import recovery_verdict
from tests.support.journal_events import SUMMARY, Result, events

JOURNALS = Path(__file__).resolve().parent.parent / "fixtures" / "journals"


def text(document: Any) -> str:
    return json.dumps(document, indent=2)


@pytest.mark.parametrize("name", ["checkout", "crash", "error", "ctk", "synthetic"])
def test_a_journal_reads_back_and_writes_out_byte_for_byte(name: str) -> None:
    path = JOURNALS / f"{name}.json"
    document = json.loads(path.read_text())
    record = RunRecord.from_json(document, str(path))
    assert text(record.to_json()) == text(document)


def test_the_runner_writes_the_journal_it_always_wrote() -> None:
    recorder = journal.Recorder()
    for event in events():
        recorder(event)
    document = journal.document(dict(SUMMARY), recorder, Result(), 1_800_000_000.0,
                                1_800_000_007.0, 5.0)
    document["host"], document["user"] = "HOST", "USER"
    document["tool"]["version"] = "VERSION"
    # a short run also keeps its probe samples per 100 ms tick (1.2 s ok, 1.7 s failed), the
    # one key a journal gained since the fixture was written
    assert document.pop("fine_series") == {"step": 0.1, "points": [
        {"t": 1.2, "probe": "home", "requests": 1, "errors": 0, "p50": 0.003, "p95": 0.003,
         "max": 0.003},
        {"t": 1.7, "probe": "home", "requests": 1, "errors": 1, "p50": None, "p95": None,
         "max": None}]}
    assert text(document) == text(json.loads((JOURNALS / "synthetic.json").read_text()))


def test_a_long_run_keeps_no_fine_series() -> None:
    recorder = journal.Recorder()
    for event in events():
        recorder(event)
    document = journal.document(dict(SUMMARY), recorder, Result(), 1_800_000_000.0,
                                1_800_000_000.0 + FINE_SECONDS + 1, 5.0)
    assert "fine_series" not in document and document["series"]


def test_an_error_journal_keeps_its_shape() -> None:
    document = journal.error_journal("experiments/missing.yaml", 2,
                                     "experiments/missing.yaml: no such file")
    assert text(document) == text(json.loads((JOURNALS / "error.json").read_text()))


def test_readers_get_attributes() -> None:
    record = RunRecord.from_json(json.loads((JOURNALS / "synthetic.json").read_text()))
    assert record.verdict == "deviated" and record.exit_code == 1
    assert [phase for phase, _ in record.checks()] == ["before"]
    assert record.phase("during").guardrails[1].reason == "never measured"
    assert record.phase("after").checks == ()
    assert record.detection is not None and record.detection.seconds == 1.5
    assert [(p.probe, p.stat("p95")) for p in record.series][-1] == ("traffic", 0.008)


def damaged(change: dict[str, Any]) -> dict[str, Any]:
    document = json.loads((JOURNALS / "crash.json").read_text())
    phase = document["phases"]["before"]
    for key, value in change.items():
        if key.startswith("check."):
            phase["checks"][0][key.removeprefix("check.")] = value
        else:
            document[key] = value
    return document


@pytest.mark.parametrize("change, field", [
    ({"verdict": None}, "verdict"),
    ({"phases": []}, "phases"),
    ({"check.status": 3}, "phases.before.checks[0].status"),
    ({"series": [{"t": "soon"}]}, "series[0].t"),
    ({"injections": [17]}, "injections[0]"),
    ({"events": [{"t": 1}]}, "events[0].event"),
])
def test_a_damaged_journal_is_refused_naming_the_file_and_the_field(
        change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError) as refused:
        RunRecord.from_json(damaged(change), "runs/x/journal.json")
    assert str(refused.value) == (f"runs/x/journal.json is a damaged chaos journal: {field} "
                                  "missing or of the wrong type")


def test_fields_a_newer_chaos_added_are_kept_not_refused() -> None:
    document = damaged({"check.colour": "red", "notes": {"by": "a newer chaos"}})
    document["tool"]["build"] = "abc"
    record = RunRecord.from_json(document, "runs/x/journal.json")
    assert record.phase("before").checks[0].extra == {"colour": "red"}
    assert text(record.to_json()) == text(document)


def test_other_documents_are_refused_for_what_they_are() -> None:
    with pytest.raises(ValueError, match="x.json is a Chaos Toolkit journal"):
        RunRecord.from_json({"chaoslib-version": "1.42"}, "x.json")
    with pytest.raises(ValueError, match=r"x.json is not a chaos journal \(chaos.journal/v1\)"):
        RunRecord.from_json({"schema": "chaos.gameday/v1"}, "x.json")


def test_a_check_verdict_as_the_grammar_writes_it_is_a_record_key_for_key() -> None:
    # a key the grammar adds without its record would be refused when the journal is built
    for verdict in (recovery_verdict(0.5, 5.0), recovery_verdict(None, 5.0)):
        written = verdict.as_dict()
        assert tuple(written) == CHECK_KEYS
        assert CheckVerdict.from_json(written, "verdict").to_json() == written
