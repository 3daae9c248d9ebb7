"""What the ledger's readers trust: each record is checked before it folds into an injection.

`chaos status`, `chaos recover` and the watchdog read ledgers other processes wrote (maybe a
crashed one, maybe another version). A record that is not what it claims is quarantined with
its line and reason, and whether it may hide an injection decides how loudly that is reported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaos.safety.ledger import Quarantined, expand, fold, read_ledger

REVERT = {"adapter": "local", "pid": 42}


def intent(ident: str = "i1", ts: float = 1.0, **extra: Any) -> dict[str, Any]:
    return {"event": "intent", "ts": ts, "id": ident, "run": "r1", "fault": "process.suspend",
            "target": "pid 42", "revert": REVERT, "deadline": 100.0, "ends": 50.0, **extra}


def write(path: Path, *lines: object) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.mark.parametrize(("record", "reason"), [
    ({"ts": 1.0}, "no `event` name"),
    ({"event": 3, "ts": 1.0}, "no `event` name"),
    ({"event": "applied", "id": "i1"}, "applied record without a numeric `ts`"),
    ({"event": "applied", "ts": "soon", "id": "i1"}, "without a numeric `ts`"),
    ({"event": "reverted", "ts": 2.0}, "reverted record without an `id`"),
    ({"event": "revert_failed", "ts": 2.0, "id": ""}, "revert_failed record without an `id`"),
    (intent(revert="kill it"), "intent record whose `revert` is not an object naming its adapter"),
    (intent(revert={"pid": 1}), "whose `revert` is not an object naming its adapter"),
    ({"event": "applied", "ts": 2.0, "id": "i1", "revert": None}, "applied record whose `revert`"),
    (intent(deadline="tomorrow"), "intent record whose `deadline` is not a number"),
    (intent(ends=[1]), "intent record whose `ends` is not a number"),
    ({"event": "run", "ts": 1.0, "pid": "42"}, "run record whose `pid` or `pid_create_time`"),
])
def test_records_that_are_not_what_they_claim_are_quarantined(tmp_path: Path,
                                                              record: dict[str, Any],
                                                              reason: str) -> None:
    path = write(tmp_path / "r1.jsonl", intent("ok"), record)
    records, quarantined = read_ledger(path)
    assert [r["id"] for r in records] == ["ok"]
    assert len(quarantined) == 1
    assert reason in quarantined[0].reason
    assert quarantined[0].line == 2
    assert str(quarantined[0]) == f"{path}:2: {quarantined[0].reason}"


def test_a_line_that_is_json_but_not_an_object_is_quarantined(tmp_path: Path) -> None:
    records, quarantined = read_ledger(write(tmp_path / "r.jsonl", [1, 2], intent()))
    assert len(records) == 1
    assert [(q.line, q.reason) for q in quarantined] == [(1, "not a JSON object")]


def test_torn_lines_and_blank_lines_are_skipped_silently(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", intent(), "", '{"event": "applied", "ts"')
    assert read_ledger(path) == ([intent()], [])


def test_a_missing_ledger_is_empty(tmp_path: Path) -> None:
    assert read_ledger(tmp_path / "absent.jsonl") == ([], [])


@pytest.mark.parametrize(("event", "hides"), [
    ("intent", True), (None, True), ("something-new", True),
    ("applied", False), ("reverted", False), ("revert_failed", False), ("finished", False),
    ("run", False),
])
def test_only_an_unreadable_intent_may_hide_an_injection(event: str | None, hides: bool) -> None:
    record = {} if event is None else {"event": event}
    assert Quarantined(Path("l"), 1, "bad", record).may_hide_injection is hides


def test_a_bad_target_in_a_batch_is_quarantined_alone(tmp_path: Path) -> None:
    batch = {"event": "intent", "ts": 1.0, "run": "r1", "fault": "f", "deadline": 9.0,
             "batch": [{"id": "a", "target": "pid 1", "revert": REVERT},
                       {"id": "b", "target": "pid 2", "revert": "gone"}]}
    records, quarantined = read_ledger(write(tmp_path / "r.jsonl", batch))
    assert [r["id"] for r in records] == ["a"]
    assert quarantined[0].record["id"] == "b"
    assert quarantined[0].may_hide_injection


def test_batch_closings_expand_to_one_record_per_target() -> None:
    applied = {"event": "applied", "ts": 2.0, "ids": ["a", "b"], "revert": {"b": {"adapter": "x"}}}
    reverted = {"event": "reverted", "ts": 3.0, "ids": ["a"], "outcomes": {"a": "gone"},
                "by": "watchdog"}
    assert list(expand([applied, reverted])) == [
        {"event": "applied", "ts": 2.0, "id": "a"},
        {"event": "applied", "ts": 2.0, "id": "b", "revert": {"adapter": "x"}},
        {"event": "reverted", "ts": 3.0, "by": "watchdog", "id": "a", "outcome": "gone"},
    ]


def test_folding_keeps_the_latest_state_and_who_reverted() -> None:
    entries = fold([intent("a", 1.0), intent("b", 1.5),
                    {"event": "applied", "ts": 2.0, "id": "a"},
                    {"event": "revert_failed", "ts": 3.0, "id": "b", "error": "EPERM"},
                    {"event": "reverted", "ts": 4.0, "id": "a", "by": "watchdog"},
                    {"event": "applied", "ts": 5.0, "id": "unknown"}])
    assert [(e.id, e.state, e.is_open) for e in entries] == [
        ("a", "reverted", False), ("b", "revert_failed", True)]
    a, b = entries
    assert (a.created, a.updated, a.reverted_by, a.adapter) == (1.0, 4.0, "watchdog", "local")
    assert (b.error, b.deadline, b.ends) == ("EPERM", 100.0, 50.0)
