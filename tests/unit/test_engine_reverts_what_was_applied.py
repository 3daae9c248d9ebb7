"""The engine, in-process: inject failures, revert failures, vanished targets, a full ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.errors import ExitCode
from tests.support.inprocess import Harness, faults

BATCHES = [(n, k) for n in (1, 2, 3, 4) for k in range(n)]  # (targets, the one that fails)


@pytest.mark.parametrize("count,failing", BATCHES)
def test_an_inject_failure_mid_batch_reverts_every_target_of_the_intent(
        tmp_path: Path, count: int, failing: int) -> None:
    """What was applied, the one that failed half-way and the ones never reached all have a
    durable intent: all are reverted (idempotent), newest first, and closed."""
    h = Harness(faults(("a", 0, 30)), tmp_path,
                {"targets": {"a": count}, "inject_raises": {f"a/{failing}"}})
    result = h.run()
    assert result.exit_code == ExitCode.ABORTED, result.reason
    applied = [f"a/{k}" for k in range(failing)]
    assert [c.target for c in h.adapter.calls if c.outcome == "injected"] == applied
    assert h.adapter.of("inject") == applied + [f"a/{failing}"]  # none after the failure
    assert h.adapter.of("revert") == [f"a/{k}" for k in range(count)][::-1]
    assert not h.adapter.held
    assert h.ledger.open_entries("run-1") == []


@pytest.mark.parametrize("count,failing", BATCHES)
def test_only_the_targets_applied_before_a_failure_are_recorded_as_applied(
        tmp_path: Path, count: int, failing: int) -> None:
    h = Harness(faults(("a", 0, 30)), tmp_path,
                {"targets": {"a": count}, "inject_raises": {f"a/{failing}"}})
    h.run()
    expected = ["intent"] + (["applied"] if failing else []) + ["reverted"]
    assert h.ledger_events() == expected
    injected = [e.data["target"] for e in h.events if e.name == "fault.injected"]
    assert injected == [f"a/{k}" for k in range(failing)]


@pytest.mark.parametrize("count,failing", BATCHES)
def test_an_inject_failure_stops_the_faults_not_yet_started(
        tmp_path: Path, count: int, failing: int) -> None:
    h = Harness(faults(("a", 0, 30), ("b", 10, 5)), tmp_path,
                {"targets": {"a": count}, "inject_raises": {f"a/{failing}"}})
    h.run()
    assert not [c for c in h.adapter.calls if c.fault == "b"]
    assert "fault.failed" in h.names()


@pytest.mark.parametrize("failing", ["a/0", "b/0", "c/0"])
def test_a_failed_revert_exits_5_and_is_recorded(tmp_path: Path, failing: str) -> None:
    h = Harness(faults(("a", 0, 30), ("b", 1, 30), ("c", 2, 30)), tmp_path,
                {"revert_raises": {failing}})
    result = h.run()
    assert result.exit_code == ExitCode.REVERT_FAILED
    assert failing.split("/")[0] in result.reason and "failed" in result.reason
    (entry,) = h.ledger.open_entries("run-1")
    assert entry.state == "revert_failed" and entry.target == failing
    assert "fault.revert_failed" in h.names()
    others = {"a/0", "b/0", "c/0"} - {failing}
    assert set(h.adapter.of("revert")) >= others and h.adapter.held == {failing}


@pytest.mark.parametrize("count", [2, 3])
def test_a_failed_revert_does_not_stop_the_other_reverts(tmp_path: Path, count: int) -> None:
    h = Harness(faults(("a", 0, 30)), tmp_path,
                {"targets": {"a": count}, "revert_raises": {"a/0"}})
    result = h.run()
    assert result.exit_code == ExitCode.REVERT_FAILED
    assert h.adapter.held == {"a/0"}
    assert [e.target for e in h.ledger.open_entries("run-1")] == ["a/0"]


@pytest.mark.parametrize("vanished", [{"a/0"}, {"a/1"}, {"a/0", "a/1"}])
def test_a_target_that_vanished_counts_as_reverted(tmp_path: Path, vanished: set[str]) -> None:
    h = Harness(faults(("a", 0, 30)), tmp_path, {"targets": {"a": 2}, "vanished": vanished})
    result = h.run()
    assert result.exit_code == ExitCode.OK, result.reason
    outcomes = {i.target.label: i.outcome for i in result.injections}
    assert outcomes == {t: "gone" if t in vanished else "reverted" for t in ("a/0", "a/1")}
    assert h.ledger.open_entries("run-1") == []


@pytest.mark.parametrize("count", [1, 3])
def test_no_durable_intent_means_no_injection(tmp_path: Path, count: int) -> None:
    h = Harness(faults(("a", 0, 30)), tmp_path, {"targets": {"a": count}}, refuse=("intent",))
    result = h.run()
    assert result.exit_code == ExitCode.INVALID, result.reason
    assert "refused, nothing injected" in result.reason
    assert h.adapter.calls == []


@pytest.mark.parametrize("count", [1, 3])
def test_a_revert_the_ledger_cannot_record_still_happens_and_exits_5(
        tmp_path: Path, count: int) -> None:
    h = Harness(faults(("a", 0, 30)), tmp_path, {"targets": {"a": count}},
                refuse=("reverted",))
    result = h.run()
    assert result.exit_code == ExitCode.REVERT_FAILED
    assert "could not record it in the ledger" in result.reason
    assert result.error is not None and "chaos recover" in (result.error.hint or "")
    assert not h.adapter.held and len(h.adapter.of("revert")) == count


def test_a_run_whose_end_cannot_be_recorded_still_reports_its_outcome(tmp_path: Path) -> None:
    h = Harness(faults(("a", 0, 30)), tmp_path, refuse=("finished",))
    result = h.run()
    assert result.exit_code == ExitCode.OK, result.reason
    assert "run.finished" in h.names()


@pytest.mark.parametrize("failing", ["a/0", "a/1"])
def test_a_failed_revert_is_retried_by_nobody_but_reported_with_its_error(
        tmp_path: Path, failing: str) -> None:
    h = Harness(faults(("a", 0, 5)), tmp_path, {"targets": {"a": 2}, "revert_raises": {failing}})
    result = h.run()
    failed = [i for i in result.injections if i.outcome == "failed"]
    assert [i.target.label for i in failed] == [failing]
    assert "as the test asked" in failed[0].error
    assert h.adapter.of("revert").count(failing) == 1


def test_an_adapter_bug_during_inject_is_a_fault_failure_and_reverts(tmp_path: Path) -> None:
    def broken(action: str, label: str) -> None:
        if action == "inject" and label == "b/0":
            raise KeyError("adapter bug")

    h = Harness(faults(("a", 0, 30), ("b", 1, 30)), tmp_path, {"hook": broken})
    result = h.run()
    assert result.exit_code == ExitCode.ABORTED
    assert "KeyError" in result.reason
    assert h.adapter.of("revert") == ["b/0", "a/0"] and not h.adapter.held
