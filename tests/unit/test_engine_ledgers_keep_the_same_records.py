"""The in-memory ledger the engine is tested with writes and folds exactly what the file
ledger does, so what the in-process tests prove about the protocol holds for `chaos run`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chaos.safety.ledger import Ledger
from chaos.safety.ledger_protocol import LedgerStore
from chaos.testing import ManualClock, MemoryLedger

SPEC = {"adapter": "testing.recording", "fault": "a"}
Steps = Callable[[LedgerStore], None]


def one(ledger: LedgerStore) -> None:
    ledger.intents("r", [("r.0.0", "a/0", SPEC)], fault="process.suspend", deadline=9.0, ends=5.0)
    ledger.applied_all("r", {"r.0.0": None})
    ledger.reverted_all("r", {"r.0.0": "reverted"}, by="runner")


def batch(ledger: LedgerStore) -> None:
    ledger.intents("r", [(f"r.0.{k}", f"a/{k}", {**SPEC, "k": k}) for k in range(3)],
                   fault="process.suspend", deadline=None)
    ledger.applied_all("r", {"r.0.0": {**SPEC, "pid": 7}, "r.0.1": None, "r.0.2": None})
    ledger.reverted_all("r", {"r.0.2": "gone", "r.0.1": "reverted"}, by="runner")


def failed(ledger: LedgerStore) -> None:
    batch(ledger)
    ledger.revert_failed("r", "r.0.0", by="runner", error="boom")


def intent_only(ledger: LedgerStore) -> None:
    ledger.intents("r", [("r.0.0", "a/0", SPEC), ("r.0.1", "a/1", SPEC)], fault="f",
                   deadline=1.0)


def late_failure_after_revert(ledger: LedgerStore) -> None:
    one(ledger)
    ledger.revert_failed("r", "r.0.0", by="watchdog", error="too late")


def reopened(ledger: LedgerStore) -> None:
    one(ledger)
    ledger.applied_all("r", {"r.0.0": None})


@pytest.mark.parametrize("steps", [one, batch, failed, intent_only, late_failure_after_revert,
                                   reopened])
def test_both_ledgers_fold_the_same_entries(tmp_path: Path, steps: Steps) -> None:
    on_disk, in_memory = Ledger(tmp_path / "disk"), MemoryLedger(tmp_path / "mem")
    for ledger in (on_disk, in_memory):
        ledger.start_run("r", pid=1, pid_create_time=2.0, title="t")
        steps(ledger)

    def shape(entries: list[Any]) -> list[tuple[Any, ...]]:
        return [(e.id, e.state, e.target, dict(e.revert), e.deadline, e.reverted_by, e.error)
                for e in entries]

    assert shape(in_memory.entries("r")) == shape(on_disk.entries("r"))
    assert shape(in_memory.open_entries("r")) == shape(on_disk.open_entries("r"))


@pytest.mark.parametrize("steps", [one, batch, failed])
def test_both_ledgers_write_the_same_records(tmp_path: Path, steps: Steps) -> None:
    import json

    clock = ManualClock(wall=1_700_000_000.0)
    on_disk = Ledger(tmp_path / "disk")
    on_disk.clock = clock
    in_memory = MemoryLedger(tmp_path / "mem", clock=clock)
    for ledger in (on_disk, in_memory):
        steps(ledger)
    written = [json.loads(line) for line in on_disk.path("r").read_text().splitlines()]
    assert in_memory.records["r"] == written


def test_a_refused_write_is_unusable_state_and_the_closing_records_never_raise(
        tmp_path: Path) -> None:
    from chaos.errors import StateDirUnusable

    ledger = MemoryLedger(tmp_path, refuse={"intent", "reverted"})
    with pytest.raises(StateDirUnusable):
        intent_only(ledger)
    assert ledger.reverted("r", "r.0.0", by="runner") is False
    assert [u.event for u in ledger.unrecorded_of("r")] == ["reverted"]
