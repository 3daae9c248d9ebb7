"""The engine's AFTER phase and the probe timing rules, in-process on the manual clock, with a
probe kind whose answers each test scripts per time (tests/support/scripted_probe.py):
recovery time from the last revert, `recover_within` as a check at its boundary, a timed-out
sample failing with a latency "> timeout" counted from its intended send time, and too few
samples judged NO_DATA, never PASS.

The faults run [10, 20) s, so the last revert is at 20 s; answers take 0.25 s (exact on a
binary clock), so recovery times are exact.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chaos.errors import ExitCode
from chaos.slo.checks import Status
from chaos.slo.probes import Probe
from chaos.testing import ManualClock
from tests.support.scripted_probe import DOWN, HANGS, Answer, ScriptedRun, between, \
    scripted_kinds

QUICK = Answer(after=0.25)
REVERT = 20.0


def down_until(end: float) -> object:
    """Down from the first injection until `end` s, quick answers otherwise."""
    return between(10.0, end, DOWN, QUICK)


@pytest.mark.parametrize("late", [0, 1, 2, 3, 5, 8])
def test_recovery_is_timed_from_the_last_revert_to_the_first_good_answer(
        tmp_path: Path, late: int) -> None:
    run = ScriptedRun(tmp_path, {"home": down_until(REVERT + late)}, checks="home >= 90%",
                      settle="10s")
    result = run.run()
    [revert] = [c for c in run.adapter.calls if c.action == "revert"]
    assert revert.at == 1000.0 + REVERT
    assert result.recovery == late + 0.25  # asked at REVERT + late, answered 0.25 s later
    [recovered] = [e for e in run.events if e.name == "run.recovered"]
    assert recovered.data["after"] == late + 0.25


@pytest.mark.parametrize("within,status", [
    ("3250ms", Status.PASS), ("3249ms", Status.FAIL), ("3s", Status.FAIL),
    ("4s", Status.PASS), ("10s", Status.PASS)])
def test_recover_within_is_a_check_that_holds_up_to_its_boundary(
        tmp_path: Path, within: str, status: Status) -> None:
    """Recovery takes exactly 3.25 s: `recover_within: 3250ms` passes, 1 ms less fails."""
    run = ScriptedRun(tmp_path, {"home": down_until(REVERT + 3)}, checks="home >= 90%",
                      recover_within=within, settle="5s")
    result = run.run()
    recovery = [v for v in result.verdicts["after"] if v.check.stat == "recovery"]
    assert [v.status for v in recovery] == [status]
    expected = ExitCode.OK if status is Status.PASS else ExitCode.DEVIATED
    assert result.exit_code == expected, result.reason
    if status is Status.PASS:
        assert recovery[0].value == 3.25


def test_a_service_that_never_recovers_fails_recover_within_and_the_after_checks(
        tmp_path: Path) -> None:
    run = ScriptedRun(tmp_path, {"home": down_until(1e9)}, checks="home >= 90%",
                      recover_within="5s")
    result = run.run()
    assert result.exit_code == ExitCode.DEVIATED
    assert result.recovery is None and "run.recovered" not in run.names()
    by_stat = {v.check.stat: v for v in result.verdicts["after"]}
    assert by_stat["recovery"].status is Status.FAIL
    assert "did not hold again within 5s" in by_stat["recovery"].reason
    assert by_stat["ratio"].status is Status.FAIL and by_stat["ratio"].value == 0.0
    assert run.adapter.of("revert") == ["a/0"]  # a failed hypothesis still reverts once


@pytest.mark.parametrize("hung", [{2}, {0, 9}, {1, 4, 7}])
def test_a_timed_out_sample_counts_as_failed(tmp_path: Path, hung: set[int]) -> None:
    run = ScriptedRun(tmp_path, {"home": lambda t: HANGS if int(t) in hung and t < 10
                                 else QUICK}, checks="home >= 100%")
    result = run.run()
    assert result.exit_code == ExitCode.STEADY_STATE_NOT_MET
    [verdict] = result.verdicts["before"]
    assert verdict.value == 1 - len(hung) / 10 and verdict.events == 10
    assert "no answer within 1s" in verdict.reason
    timed_out = [e.data for e in run.events if e.name == "probe.sampled" and not e.data["ok"]]
    assert [(d["at"], d["latency"]) for d in timed_out] == [(float(k), 1.0) for k in
                                                            sorted(hung)]
    assert run.adapter.calls == []


@pytest.mark.parametrize("check", ["home.latency.p95 < 500ms", "home.latency.max < 5s",
                                   "home.latency.p50 < 5s"])
def test_a_latency_falling_on_a_timeout_is_above_it_and_fails(tmp_path: Path,
                                                               check: str) -> None:
    """The timeout (1 s) is a lower bound of a hung sample's latency: it fails even a bound
    above the timeout, and is shown as "> 1s"."""
    hung = {0, 2, 4, 6, 8, 9} if "p50" in check else {3}
    run = ScriptedRun(tmp_path, {"home": lambda t: HANGS if int(t) in hung and t < 10
                                 else QUICK}, checks=check)
    result = run.run()
    [verdict] = result.verdicts["before"]
    assert verdict.status is Status.FAIL and verdict.measured == "> 1s"
    assert result.exit_code == ExitCode.STEADY_STATE_NOT_MET


@pytest.mark.parametrize("after,measured,status", [
    (0.25, "250ms", Status.PASS), (0.5, "500ms", Status.FAIL), (0.75, "750ms", Status.FAIL)])
def test_a_slow_answer_within_the_timeout_is_measured_exactly(
        tmp_path: Path, after: float, measured: str, status: Status) -> None:
    run = ScriptedRun(tmp_path, {"home": lambda t: Answer(after=after)},
                      checks="home.latency.max < 500ms")
    [verdict] = run.run().verdicts["before"]
    assert (verdict.status, verdict.measured) == (status, measured)


@pytest.mark.parametrize("before,status", [("1s", Status.NO_DATA), ("2s", Status.NO_DATA),
                                           ("3s", Status.PASS)])
def test_too_few_samples_are_no_data_and_never_a_pass(tmp_path: Path, before: str,
                                                      status: Status) -> None:
    """A probe check needs 3 samples by default; sampled every 1 s, a 2 s window has 2."""
    run = ScriptedRun(tmp_path, {"home": lambda t: QUICK}, checks="home >= 100%",
                      before=before)
    result = run.run()
    [verdict] = result.verdicts["before"]
    assert verdict.status is status
    if status is Status.NO_DATA:
        assert result.exit_code == ExitCode.STEADY_STATE_NOT_MET
        assert verdict.value is None and "need 3" in verdict.reason
        assert run.adapter.calls == []
    else:
        assert result.exit_code == ExitCode.OK


@pytest.mark.parametrize("min_events,status", [(10, Status.PASS), (11, Status.NO_DATA)])
def test_min_events_raises_the_bar(tmp_path: Path, min_events: int, status: Status) -> None:
    run = ScriptedRun(tmp_path, {"home": lambda t: QUICK}, checks="home >= 100%",
                      extra=f"  min_events: {min_events}")
    [verdict] = run.run().verdicts["before"]
    assert (verdict.status, verdict.events) == (status, 10)


@pytest.mark.parametrize("answer", [DOWN, HANGS])
def test_too_few_failing_samples_are_no_data_too(tmp_path: Path, answer: Answer) -> None:
    """Two samples of one probe are too few to judge either way; the run still refuses."""
    run = ScriptedRun(tmp_path, {"home": lambda t: answer}, checks="home >= 100%", before="2s")
    result = run.run()
    [verdict] = result.verdicts["before"]
    assert (verdict.status, verdict.events) == (Status.NO_DATA, 2)
    assert result.exit_code == ExitCode.STEADY_STATE_NOT_MET and run.adapter.calls == []


@pytest.mark.parametrize("late,after,timed_out,latency", [
    (0.0, 0.75, False, 0.75), (0.0, 1.5, True, 1.0), (0.5, 0.25, False, 0.75),
    (0.5, 0.75, True, 1.0), (0.9, 0.0, False, 0.9), (1.5, 0.25, True, 1.0)])
def test_a_probe_is_timed_from_its_intended_send_time(late: float, after: float,
                                                      timed_out: bool, latency: float) -> None:
    """A sample asked `late` after it was due: its 1 s timeout and its latency count from when
    it was due, so a late sampler cannot hide a slow answer."""
    clock = ManualClock()
    kinds = scripted_kinds(clock, {"home": lambda t: Answer(after=after)}, [])
    probe = Probe("home", "scripted", {"script": "home"}, kinds)
    due = clock.monotonic()
    clock.advance(late)

    async def ask() -> object:
        return await clock.run(probe.sample(due, clock=clock))

    sample = asyncio.run(ask())
    assert (sample.timed_out, sample.ok, sample.at) == (timed_out, not timed_out, due)
    assert sample.latency == pytest.approx(latency)
    assert ("no answer within 1s" in sample.detail) is timed_out


def test_cancelling_a_sample_cancels_the_question() -> None:
    clock = ManualClock()
    asked: list[tuple[str, float]] = []
    kinds = scripted_kinds(clock, {"home": lambda t: HANGS}, asked)
    probe = Probe("home", "scripted", {"script": "home"}, kinds)

    async def ask_then_cancel() -> set[asyncio.Task[object]]:
        sampling = asyncio.create_task(probe.sample(clock=clock))
        while not asked:
            await asyncio.sleep(0)
        sampling.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sampling
        return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}

    assert asyncio.run(ask_then_cancel()) == set()
