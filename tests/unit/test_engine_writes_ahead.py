"""The engine, in-process: the write-ahead ledger protocol, step by step, and the failpoints
crash tests kill the runner at (each one sees the ledger and the targets as the crash tests
assume)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.safety import failpoints
from tests.support.inprocess import Harness, faults


def _state(h: Harness) -> tuple[list[str], list[str]]:
    """(ledger events so far, targets held)."""
    return h.ledger_events(), sorted(h.adapter.held)


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_the_intent_is_durable_before_any_target_is_touched(tmp_path: Path, count: int) -> None:
    seen: list[tuple[str, list[str]]] = []
    h = Harness(faults(("a", 0, 10)), tmp_path, {"targets": {"a": count}})

    def at_inject(action: str, label: str) -> None:
        if action == "inject":
            entries = {e.target: e.state for e in h.ledger.entries("run-1")}
            seen.append((label, sorted(entries.values())))

    h.adapter.hook = at_inject  # type: ignore[assignment]
    h.run()
    assert [label for label, _ in seen] == [f"a/{k}" for k in range(count)]
    assert all(states == ["intent"] * count for _, states in seen)


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_one_record_per_step_for_a_whole_target_set(tmp_path: Path, count: int) -> None:
    h = Harness(faults(("a", 0, 10)), tmp_path, {"targets": {"a": count}})
    h.run()
    assert h.ledger_events() == ["intent", "applied", "reverted"]
    intent = h.ledger.records["run-1"][1]
    if count == 1:
        assert intent["id"] == "run-1.0.0" and "batch" not in intent
    else:
        assert [b["target"] for b in intent["batch"]] == [f"a/{k}" for k in range(count)]


@pytest.mark.parametrize("count", [1, 3])
def test_each_revert_spec_is_in_the_intent_as_plain_data(tmp_path: Path, count: int) -> None:
    h = Harness(faults(("a", 0, 10)), tmp_path, {"targets": {"a": count}})
    h.run()
    specs = [e.revert for e in h.ledger.entries("run-1")]
    assert specs == [{"adapter": "testing.recording", "fault": "a", "target": f"a/{k}"}
                     for k in range(count)]


@pytest.mark.parametrize("timeline,events", [
    ([("a", 0, 10)], ["intent", "applied", "reverted"]),
    ([("a", 0, 10), ("b", 20, 5)], ["intent", "applied", "reverted"] * 2),
    ([("a", 0, 10), ("b", 5, 10)], ["intent", "applied", "intent", "applied", "reverted",
                                    "reverted"]),
    ([("a", 0, 10), ("b", 1, 2)], ["intent", "applied", "intent", "applied", "reverted",
                                   "reverted"]),
])
def test_the_ledger_follows_the_timeline(tmp_path: Path, timeline: list[tuple[str, float, float]],
                                         events: list[str]) -> None:
    h = Harness(faults(*timeline), tmp_path)
    h.run()
    assert h.ledger_events() == events


def test_reverts_are_recorded_by_the_runner_with_their_outcomes(tmp_path: Path) -> None:
    h = Harness(faults(("a", 0, 10)), tmp_path, {"targets": {"a": 2}, "vanished": {"a/1"}})
    h.run()
    reverted = h.ledger.records["run-1"][-2]
    assert reverted["event"] == "reverted" and reverted["by"] == "runner"
    assert reverted["outcomes"] == {"run-1.0.1": "gone", "run-1.0.0": "reverted"}


# what each failpoint sees for one fault on two targets: (ledger events, targets held)
AT_FAILPOINTS = {
    "before_intent": ([], []),
    "after_intent": (["intent"], []),
    "after_inject": (["intent"], ["a/0"]),  # (first hit: after the first target)
    "before_applied": (["intent"], ["a/0", "a/1"]),
    "after_applied": (["intent", "applied"], ["a/0", "a/1"]),
    "before_revert": (["intent", "applied"], ["a/0", "a/1"]),
    "after_revert": (["intent", "applied"], ["a/0"]),  # a/1 undone, not yet recorded
    "after_reverted": (["intent", "applied", "reverted"], []),
    "during_cleanup": (["intent", "applied", "reverted"], []),
}


@pytest.mark.parametrize("point", sorted(AT_FAILPOINTS))
def test_each_failpoint_sees_the_protocol_step_its_crash_test_kills_at(
        tmp_path: Path, point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(faults(("a", 0, 10)), tmp_path, {"targets": {"a": 2}})
    seen: dict[str, tuple[list[str], list[str]]] = {}
    real = failpoints.hit

    def hit(name: str) -> None:
        real(name)  # still checks the name is a known point
        seen.setdefault(name, _state(h))

    monkeypatch.setattr(failpoints, "hit", hit)
    h.run()
    assert seen[point] == AT_FAILPOINTS[point]


def test_every_failpoint_is_reached_by_a_run_in_protocol_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(faults(("a", 0, 10)), tmp_path)
    order: list[str] = []
    monkeypatch.setattr(failpoints, "hit", order.append)
    h.run()
    assert order == ["before_intent", "after_intent", "after_inject", "before_applied",
                     "after_applied", "before_revert", "after_revert", "after_reverted",
                     "during_cleanup"]
    assert set(order) == failpoints.POINTS


def test_an_unknown_failpoint_name_is_a_bug_caught_at_once() -> None:
    with pytest.raises(AssertionError):
        failpoints.hit("after_lunch")


@pytest.mark.parametrize("point", ["after_intent", "after_inject", "before_applied"])
def test_a_crash_at_a_failpoint_leaves_an_open_entry_the_watchdog_can_revert(
        tmp_path: Path, point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process stand-in for SIGKILL: the step raises; what the ledger holds then is what a
    watchdog would revert from, and the runner's own cleanup reverts it here."""
    h = Harness(faults(("a", 0, 10)), tmp_path)
    open_at_crash: list[list[str]] = []

    def hit(name: str) -> None:
        if name == point:
            open_at_crash.append([e.target for e in h.ledger.open_entries("run-1")])
            raise RuntimeError(f"crash at {name}")

    monkeypatch.setattr(failpoints, "hit", hit)
    h.run()
    assert open_at_crash == [["a/0"]]
    assert h.ledger.open_entries("run-1") == [] and not h.adapter.held
