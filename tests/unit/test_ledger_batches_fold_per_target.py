"""A fault's many targets share one record per step, but every target stays its own entry: read
back, a batch is one entry per id, with its own spec and state - also half-way through."""

from __future__ import annotations

import json
from pathlib import Path

from chaos.model.redaction import Redactor
from chaos.safety.ledger import Ledger


def on_disk(path: Path) -> list[dict[str, object]]:
    """The records as written (reading them back expands each batch into one per target)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def spec(pid: int) -> dict[str, object]:
    return {"adapter": "local.process", "action": "resume",
            "processes": [{"pid": pid, "create_time": 1.0}]}


def test_a_batch_folds_into_one_entry_per_target(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.start_run("r1", pid=1, pid_create_time=0.0, title="t")
    ledger.intents("r1", [(f"r1.0.{i}", f"pid {i}", spec(i)) for i in range(3)],
                   fault="process.suspend", deadline=123.0, ends=100.0)
    assert [r["event"] for r in on_disk(ledger.path("r1"))] == ["run", "intent"]
    assert [(e.id, e.state, e.target, e.deadline) for e in ledger.entries("r1")] == [
        (f"r1.0.{i}", "intent", f"pid {i}", 123.0) for i in range(3)]

    ledger.applied_all("r1", {"r1.0.0": None, "r1.0.1": spec(41)})  # the third never applied
    entries = {e.id: e for e in ledger.entries("r1")}
    assert [entries[f"r1.0.{i}"].state for i in range(3)] == ["applied", "applied", "intent"]
    assert entries["r1.0.1"].revert == spec(41)  # a refined spec replaces the intent's
    assert entries["r1.0.0"].revert == spec(0)

    ledger.reverted_all("r1", {"r1.0.0": "reverted", "r1.0.2": "gone"}, by="watchdog")
    entries = {e.id: e for e in ledger.entries("r1")}
    assert [e.id for e in ledger.open_entries("r1")] == ["r1.0.1"]
    assert entries["r1.0.2"].reverted_by == "watchdog"
    assert [r["event"] for r in on_disk(ledger.path("r1"))] == [
        "run", "intent", "applied", "reverted"]


def test_a_single_target_is_written_as_plain_records(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.intents("r1", [("r1.0.0", "pid 7", spec(7))], fault="process.suspend",
                   deadline=None)
    ledger.applied_all("r1", {"r1.0.0": None})
    ledger.reverted_all("r1", {"r1.0.0": "reverted"}, by="runner")
    records = on_disk(ledger.path("r1"))
    assert [r.get("id") for r in records] == ["r1.0.0"] * 3
    assert not any("batch" in r or "ids" in r for r in records)


def test_a_torn_batch_intent_is_no_entry(tmp_path: Path) -> None:
    """The intent is written before any target is touched: torn, it stands for nothing done."""
    ledger = Ledger(tmp_path)
    ledger.intents("r1", [(f"r1.0.{i}", f"pid {i}", spec(i)) for i in range(2)],
                   fault="process.suspend", deadline=None)
    line = json.dumps({"v": 1, "ts": 2.0, "event": "intent", "run": "r1",
                       "batch": [{"id": "r1.1.0", "target": "x", "revert": spec(9)}]})
    with open(ledger.path("r1"), "ab") as handle:
        handle.write(line[: len(line) // 2].encode())
    assert [e.id for e in ledger.entries("r1")] == ["r1.0.0", "r1.0.1"]


def test_labels_are_masked_and_revert_specs_are_not(tmp_path: Path) -> None:
    secret = "0123456789abcdef"
    ledger = Ledger(tmp_path, redactor=Redactor.of({"API_TOKEN": secret}))
    ledger.intents("r1", [(f"r1.0.{i}", f"pid {i} (sh --token={secret[:10]}", spec(i))
                          for i in range(2)], fault="process.suspend", deadline=None)
    ledger.revert_failed("r1", "r1.0.0", by="runner", error=f"cannot touch {secret}")
    text = ledger.path("r1").read_text()
    assert secret[:6] not in text
    assert [e.target for e in ledger.entries("r1")] == [
        "pid 0 (sh --token=***", "pid 1 (sh --token=***"]
    assert ledger.entries("r1")[1].revert == spec(1)
