"""The engine, in-process on a manual clock: phases, timeline offsets, revert order."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.errors import ExitCode
from tests.support.inprocess import Harness, faults

T0 = 1000.0  # ManualClock's start

TIMELINES = [
    [("a", 0, 30)],
    [("a", 0, 1)],
    [("a", 2.5, 0.5)],
    [("a", 0, 30), ("b", 5, 10)],
    [("a", 0, 10), ("b", 0, 10)],
    [("a", 0, 5), ("b", 5, 5)],
    [("a", 10, 5), ("b", 0, 30)],
    [("a", 0, 60), ("b", 1, 1), ("c", 2, 1)],
    [("a", 3, 7), ("b", 3, 8), ("c", 3, 9)],
    [("a", 0, 0.25), ("b", 0.25, 0.25), ("c", 0.5, 0.25), ("d", 0.75, 0.25)],
    [("a", 120, 60)],
    [("a", 0, 300), ("b", 299, 1)],
]


@pytest.mark.parametrize("timeline", TIMELINES, ids=lambda t: "+".join(
    f"{n}@{s}for{d}" for n, s, d in t))
def test_each_fault_is_injected_at_its_start_and_reverted_at_its_end(
        tmp_path: Path, timeline: list[tuple[str, float, float]]) -> None:
    h = Harness(faults(*timeline), tmp_path)
    result = h.run()
    assert result.exit_code == ExitCode.OK, result.reason
    for name, start, duration in timeline:
        (inject,) = [c for c in h.adapter.calls if c.fault == name and c.action == "inject"]
        (revert,) = [c for c in h.adapter.calls if c.fault == name and c.action == "revert"]
        assert inject.at == pytest.approx(T0 + start)
        assert revert.at == pytest.approx(T0 + start + duration)


@pytest.mark.parametrize("timeline", TIMELINES, ids=lambda t: "+".join(
    f"{n}@{s}for{d}" for n, s, d in t))
def test_the_journal_times_are_the_timeline(tmp_path: Path,
                                            timeline: list[tuple[str, float, float]]) -> None:
    h = Harness(faults(*timeline), tmp_path)
    result = h.run()
    by_name = {i.fault.name: i for i in result.injections}
    for name, start, duration in timeline:
        assert by_name[name].injected_at == pytest.approx(start)
        assert by_name[name].reverted_at == pytest.approx(start + duration)
        assert by_name[name].outcome == "reverted" and by_name[name].by == "runner"


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_a_faults_targets_are_reverted_in_reverse_order(tmp_path: Path, count: int) -> None:
    h = Harness(faults(("a", 0, 10)), tmp_path, {"targets": {"a": count}})
    h.run()
    injected = h.adapter.of("inject")
    assert injected == [f"a/{k}" for k in range(count)]
    assert h.adapter.of("revert") == injected[::-1]


@pytest.mark.parametrize("count", [1, 2, 4])
def test_everything_is_reverted_newest_first_when_the_run_is_stopped(
        tmp_path: Path, count: int) -> None:
    h = Harness(faults(("a", 0, 60), ("b", 1, 60), ("c", 2, 60)), tmp_path,
                {"targets": {"a": count, "b": count, "c": count}})

    async def stop_later(h: Harness) -> None:
        await h.clock.sleep(30)
        h.engine.stop(ExitCode.ABORTED, "guardrail breached: test")

    result = h.run(stop_later)
    assert result.exit_code == ExitCode.ABORTED
    assert h.adapter.of("revert") == h.adapter.of("inject")[::-1]
    assert not h.adapter.held


@pytest.mark.parametrize("timeline,phases", [
    ([("a", 0, 5)], ["during"]),
    ([], ["during"]),
])
def test_without_a_hypothesis_only_the_during_phase_runs(
        tmp_path: Path, timeline: list[tuple[str, float, float]], phases: list[str]) -> None:
    h = Harness(faults(*timeline) if timeline else faults(("a", 0, 1)), tmp_path)
    h.run()
    assert [e.data["phase"] for e in h.events if e.name == "phase.started"] == phases


def test_events_follow_the_run_in_order(tmp_path: Path) -> None:
    h = Harness(faults(("a", 0, 5)), tmp_path)
    h.run()
    assert h.names() == ["run.started", "phase.started", "fault.planned", "fault.injected",
                         "fault.reverted", "run.finished"]


@pytest.mark.parametrize("start", [0, 1, 7.5, 42])
def test_an_instant_fault_is_closed_as_soon_as_it_is_injected(tmp_path: Path,
                                                              start: float) -> None:
    h = Harness(faults(("kill", start, 0), fault_type="process.kill"), tmp_path)
    result = h.run()
    assert result.exit_code == ExitCode.OK, result.reason
    inject, revert = h.adapter.calls
    assert (inject.action, revert.action) == ("inject", "revert")
    assert inject.at == revert.at == pytest.approx(T0 + start)
    assert h.ledger.open_entries("run-1") == []


@pytest.mark.parametrize("count", [1, 3])
def test_the_run_finishes_with_nothing_open_and_nothing_held(tmp_path: Path,
                                                             count: int) -> None:
    h = Harness(faults(("a", 0, 10), ("b", 2, 3)), tmp_path,
                {"targets": {"a": count, "b": count}})
    result = h.run()
    assert result.exit_code == ExitCode.OK
    assert h.ledger.open_entries("run-1") == []
    assert not h.adapter.held
    assert h.ledger.events("run-1")[0] == "run" and h.ledger.events("run-1")[-1] == "finished"


@pytest.mark.parametrize("duration", [1, 10, 300])
def test_the_ledger_says_when_each_fault_ends_and_when_the_watchdog_takes_over(
        tmp_path: Path, duration: float) -> None:
    from chaos.runner.timeline import deadline_grace

    h = Harness(faults(("a", 0, duration)), tmp_path)
    h.run()
    (intent,) = [r for r in h.ledger.records["run-1"] if r["event"] == "intent"]
    assert intent["ends"] == pytest.approx(h.clock.time() - duration + duration, abs=duration)
    assert intent["deadline"] - intent["ends"] == pytest.approx(deadline_grace(duration))
    assert intent["ts"] == pytest.approx(intent["ends"] - duration)


@pytest.mark.parametrize("limit,count", [(1, 2), (3, 4), (10, 11)])
def test_more_targets_than_the_limit_are_refused_before_any_is_touched(
        tmp_path: Path, limit: int, count: int) -> None:
    h = Harness(faults(("a", 0, 10), max_targets=limit), tmp_path, {"targets": {"a": count}})
    result = h.run()
    assert result.exit_code == ExitCode.INVALID and "max_targets" in result.reason
    assert h.adapter.calls == [] and h.ledger_events() == []


def test_a_seconds_long_experiment_takes_milliseconds(tmp_path: Path) -> None:
    import time

    started = time.perf_counter()
    Harness(faults(("a", 0, 590), ("b", 300, 200)), tmp_path).run()
    assert time.perf_counter() - started < 1.0
