"""The engine with a probe hypothesis, in-process on the manual clock: a probe kind registered
only in a fresh registry answers as each test scripts it per time, so the phases' verdicts,
the guardrail abort and what was (not) injected follow from known answers.

Timeline of every run here: BEFORE samples [0, 10) s every 1 s; the faults start at 10 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.errors import ExitCode
from chaos.slo.checks import Status
from tests.support.scripted_probe import DOWN, HANGS, UP, Answer, ScriptedRun, between

BEFORE_END = 10.0


def only_in_before(t: float, failing: set[int], answer: Answer = DOWN) -> Answer:
    return answer if t < BEFORE_END and int(t) in failing else UP


@pytest.mark.parametrize("failing", [{0}, {9}, {0, 5}, {3, 4, 5}, set(range(10))])
def test_a_steady_state_not_met_exits_3_and_injects_nothing(tmp_path: Path,
                                                             failing: set[int]) -> None:
    run = ScriptedRun(tmp_path, {"home": lambda t: only_in_before(t, failing)},
                      checks="home >= 100%")
    result = run.run()
    assert result.exit_code == ExitCode.STEADY_STATE_NOT_MET, result.reason
    assert "steady state not met" in result.reason
    assert run.adapter.calls == []
    assert "intent" not in run.ledger.events("run-1")
    assert "fault.injected" not in run.names() and "during" not in [
        e.data.get("phase") for e in run.events if e.name == "phase.started"]
    [verdict] = result.verdicts["before"]
    assert verdict.status is Status.FAIL and verdict.events == 10
    assert verdict.value == pytest.approx(1 - len(failing) / 10)


@pytest.mark.parametrize("failing,met", [(1, True), (2, False)])
def test_the_steady_state_threshold_is_inclusive(tmp_path: Path, failing: int,
                                                 met: bool) -> None:
    """90% of 10 samples is 9: one failure meets `>= 90%`, two do not."""
    run = ScriptedRun(tmp_path, {"home": lambda t: only_in_before(t, set(range(failing)))},
                      checks="home >= 90%")
    result = run.run()
    assert (result.exit_code == ExitCode.OK) is met, result.reason
    assert bool(run.adapter.of("inject")) is met


def test_a_second_probe_failing_alone_is_enough_to_refuse(tmp_path: Path) -> None:
    run = ScriptedRun(tmp_path, {"home": lambda t: UP,
                                 "api": lambda t: only_in_before(t, {7})},
                      checks="home >= 100%, api >= 100%")
    result = run.run()
    assert result.exit_code == ExitCode.STEADY_STATE_NOT_MET
    assert [v.status for v in result.verdicts["before"]] == [Status.PASS, Status.FAIL]
    assert run.adapter.calls == []


def test_probes_are_asked_on_their_schedule_from_the_manual_clock(tmp_path: Path) -> None:
    run = ScriptedRun(tmp_path, {"home": lambda t: UP}, checks="home >= 100%")
    assert run.run().exit_code == ExitCode.OK
    before = [t for _, t in run.asked if t < BEFORE_END]
    assert before == [float(k) for k in range(10)]
    assert run.adapter.calls[0].at == 1000.0 + BEFORE_END  # the clock started at 1000


FAULTS = [(("a", 0, 30),), (("a", 0, 30), ("b", 1, 30)),
          (("a", 0, 30), ("b", 1, 30), ("c", 2, 30))]


@pytest.mark.parametrize("faults", FAULTS)
@pytest.mark.parametrize("outage", [3.0, 5.0, 8.0])
def test_a_guardrail_breach_during_reverts_everything_newest_first_and_exits_4(
        tmp_path: Path, faults: tuple[tuple[str, float, float], ...], outage: float) -> None:
    """The service goes down `outage` s into the faults; `home < 50%` over the last 3 s
    breaches within a few samples, long before the 30 s faults end."""
    start = BEFORE_END + outage
    run = ScriptedRun(tmp_path, {"home": between(start, 1e9, DOWN)}, checks="home >= 90%",
                      aborts="home < 50%", faults=faults)
    result = run.run()
    assert result.exit_code == ExitCode.ABORTED, result.reason
    assert "guardrail breached: home < 50%" in result.reason
    names = [f"{name}/0" for name, _, _ in faults]
    assert run.adapter.of("inject") == names
    assert run.adapter.of("revert") == names[::-1]
    assert not run.adapter.held and run.ledger.open_entries("run-1") == []
    reverted = [c.at - 1000.0 for c in run.adapter.calls if c.action == "revert"]
    assert start < reverted[0] < start + 4  # within the 3 s window's turning, not at 30 s
    assert "after" not in [e.data.get("phase") for e in run.events if e.name == "phase.started"]
    assert run.names("guardrail.breached") == ["guardrail.breached"]


@pytest.mark.parametrize("answer", [DOWN, HANGS])
def test_a_breach_counts_failures_and_timeouts_alike(tmp_path: Path, answer: Answer) -> None:
    run = ScriptedRun(tmp_path, {"home": between(BEFORE_END + 2, 1e9, answer)},
                      checks="home >= 90%", aborts="home < 50%")
    assert run.run().exit_code == ExitCode.ABORTED


def test_a_blip_below_the_guardrail_does_not_abort(tmp_path: Path) -> None:
    """One failed sample in a 3 s window is 67%, above `home < 50%`: no abort, the faults run
    their course and are reverted at their end."""
    run = ScriptedRun(tmp_path, {"home": between(BEFORE_END + 4, BEFORE_END + 5, DOWN)},
                      checks="home >= 50%", aborts="home < 50%")
    result = run.run()
    assert result.exit_code == ExitCode.OK, result.reason
    assert "guardrail.breached" not in run.names()
    [revert] = [c for c in run.adapter.calls if c.action == "revert"]
    assert revert.at == 1000.0 + BEFORE_END + 10
