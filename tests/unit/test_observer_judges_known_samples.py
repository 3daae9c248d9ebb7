"""The observer, in-process: verdicts, guardrails and recovery from samples the test chose."""

from __future__ import annotations

import asyncio

import pytest

from chaos.errors import ExitCode
from chaos.slo.checks import Status
from tests.support.inprocess import Observed

RATIOS = [
    ("1111111111", "home >= 99%", Status.PASS, 1.0),
    ("1111111110", "home >= 99%", Status.FAIL, 0.9),
    ("1111111110", "home >= 90%", Status.PASS, 0.9),
    ("1111111110", "home > 90%", Status.FAIL, 0.9),
    ("0000000000", "home >= 1%", Status.FAIL, 0.0),
    ("1010101010", "home >= 50%", Status.PASS, 0.5),
    ("1010101010", "home >= 51%", Status.FAIL, 0.5),
    ("111", "home >= 99%", Status.PASS, 1.0),
    ("11t", "home >= 60%", Status.PASS, 2 / 3),
    ("1tt", "home >= 50%", Status.FAIL, 1 / 3),
    ("0111111111", "home <= 95%", Status.PASS, 0.9),
    ("1111111111", "home < 100%", Status.FAIL, 1.0),
]


@pytest.mark.parametrize("oks,check,status,value", RATIOS)
def test_a_ratio_check_over_known_samples(oks: str, check: str, status: Status,
                                          value: float) -> None:
    seen = Observed(checks=check)
    seen.feed("home", oks)
    (verdict,) = seen.judge()
    assert verdict.status is status
    assert verdict.value == pytest.approx(value)
    assert verdict.events == len(oks)


@pytest.mark.parametrize("oks,status", [
    ("", Status.NO_DATA), ("1", Status.NO_DATA), ("11", Status.NO_DATA),
    ("10", Status.NO_DATA),
    ("0", Status.NO_DATA), ("00", Status.NO_DATA), ("000", Status.FAIL),
])
def test_too_few_samples_is_no_data_never_a_pass(oks: str, status: Status) -> None:
    seen = Observed(checks="home >= 1%")
    seen.feed("home", oks)
    (verdict,) = seen.judge()
    assert verdict.status is status and not verdict.passed


@pytest.mark.parametrize("latency,check,status", [
    (0.010, "home.latency.p95 < 300ms", Status.PASS),
    (0.299, "home.latency.p95 < 300ms", Status.PASS),
    (0.300, "home.latency.p95 < 300ms", Status.FAIL),
    (0.500, "home.latency.p95 < 300ms", Status.FAIL),
    (0.100, "home.latency.max <= 100ms", Status.PASS),
    (0.101, "home.latency.max <= 100ms", Status.FAIL),
    (0.050, "home.latency.p50 < 60ms", Status.PASS),
])
def test_a_latency_check_over_known_samples(latency: float, check: str,
                                            status: Status) -> None:
    seen = Observed(checks=check)
    seen.feed("home", "1111111111", latency=latency)
    (verdict,) = seen.judge()
    assert verdict.status is status
    assert verdict.value == pytest.approx(latency)


def test_a_failing_latency_check_says_it_was_the_latency() -> None:
    seen = Observed(checks="home.latency.p95 < 300ms")
    seen.feed("home", "1111111111", latency=0.5)
    (verdict,) = seen.judge()
    assert "was 500ms" in verdict.reason and "HTTP" not in verdict.reason


@pytest.mark.parametrize("home,api,status", [
    ("1111111111", "1111111111", Status.PASS),
    ("1111111111", "1111111110", Status.FAIL),
    ("1111111110", "1111111111", Status.FAIL),
    ("1111111111", "11", Status.NO_DATA),
    ("1111111110", "11", Status.FAIL),
])
def test_all_judges_every_probe_and_reports_the_weakest(home: str, api: str,
                                                        status: Status) -> None:
    seen = Observed(checks="all >= 95%")
    seen.feed("home", home)
    seen.feed("api", api)
    (verdict,) = seen.judge()
    assert verdict.status is status


@pytest.mark.parametrize("start,end,expected", [
    (1000.0, 1010.0, 10), (1000.0, 1005.0, 5), (1005.0, 1010.0, 5), (1002.5, 1003.5, 1),
])
def test_a_window_judges_only_the_samples_sent_in_it(start: float, end: float,
                                                     expected: int) -> None:
    seen = Observed(checks="home >= 1%")
    seen.feed("home", "1111111111")
    (verdict,) = seen.judge(start=start, end=end)
    assert verdict.events == expected


@pytest.mark.parametrize("phase", ["before", "during", "after"])
def test_each_verdict_is_an_event_of_its_phase(phase: str) -> None:
    seen = Observed(checks="home >= 99%")
    seen.feed("home", "1111111111")
    seen.judge(phase)
    evaluated = [e for e in seen.events if e.name == "check.evaluated"]
    assert [e.data["phase"] for e in evaluated] == [phase]
    (finished,) = [e for e in seen.events if e.name == "phase.finished"]
    assert finished.data == {"phase": phase, "passed": True}


def test_failures_name_the_check_and_why() -> None:
    seen = Observed(checks="home >= 99%")
    seen.feed("home", "1111111100")
    seen.judge()
    assert "home >= 99%" in seen.observer.failures("before")
    assert "HTTP 500" in seen.observer.failures("before")
    assert seen.observer.invalid("before") is None


# --- guardrails


@pytest.mark.parametrize("oks,breached", [
    ("11111", False), ("11110", False), ("11100", False), ("11000", True), ("00000", True),
    ("0", False),  # one sample is not enough to abort on
    ("00", True),
])
def test_a_guardrail_aborts_on_the_samples_of_its_window(oks: str, breached: bool) -> None:
    seen = Observed(aborts="home < 50%")
    seen.observer.guard(1000.0)
    seen.clock.advance(len(oks))
    seen.feed("home", oks)
    assert bool(seen.aborted) is breached
    if breached:
        ((code, why),) = seen.aborted
        assert code == ExitCode.ABORTED and why.startswith("guardrail breached: home < 50%")
        assert "guardrail.breached" in [e.name for e in seen.events]


def test_guardrails_are_not_judged_outside_the_during_phase() -> None:
    seen = Observed(aborts="home < 50%")
    seen.feed("home", "00000")
    assert seen.aborted == []
    seen.observer.guard(1000.0)
    asyncio.run(seen.observer.unguard())
    seen.feed("home", "00000", start=1010.0)
    assert seen.aborted == []


def test_how_close_a_guardrail_came_is_reported_when_the_phase_ends() -> None:
    seen = Observed(aborts="home < 50%")
    seen.observer.guard(1000.0)
    seen.clock.advance(5)
    seen.feed("home", "11101")
    asyncio.run(seen.observer.unguard())
    (closest,) = [e for e in seen.events if e.name == "guardrail.evaluated"]
    assert closest.data["check"] == "home < 50%" and closest.data["breached"] is False
    assert closest.data["verdict"]["value"] == pytest.approx(0.75)  # after "1110"


@pytest.mark.parametrize("window_oks", ["00000", "0000000000"])
def test_only_the_abort_window_counts_for_a_guardrail(window_oks: str) -> None:
    """A long healthy stretch does not dilute a breach in the last `during.window`."""
    seen = Observed(aborts="home < 50%")
    seen.observer.guard(1000.0)
    seen.clock.advance(100)
    seen.feed("home", "1" * 90, start=1000.0)
    assert seen.aborted == []
    seen.feed("home", window_oks, start=1100.0 - len(window_oks))
    assert seen.aborted


# --- recovery


@pytest.mark.parametrize("failing_for", [0, 1, 2, 5, 9])
def test_recovery_is_measured_from_the_last_revert_to_the_first_healthy_answer(
        failing_for: int) -> None:
    seen = Observed(checks="home >= 99%")
    last_revert = 1000.0
    home = "0" * failing_for + "1" * 5
    for k, mark in enumerate(home):  # answers arrive in time order, probe by probe
        seen.feed("home", mark, start=last_revert + 0.5 + k)
        seen.feed("api", "1", start=last_revert + 0.5 + k)

    async def measure() -> None:
        seen.clock.advance(20)
        await seen.observer.measure_recovery(last_revert, 30.0)

    asyncio.run(measure())
    assert seen.observer.recovery is not None
    assert seen.observer.recovery == pytest.approx(0.5 + failing_for + 0.01)
    assert [e.name for e in seen.events][-1] == "run.recovered"


def test_no_recovery_within_the_limit_is_none() -> None:
    seen = Observed(checks="home >= 99%")
    seen.feed("home", "0" * 10, start=1000.5)
    seen.feed("api", "1" * 10, start=1000.5)

    async def measure() -> None:
        task = asyncio.ensure_future(seen.observer.measure_recovery(1000.0, 5.0))
        await seen.clock.run(task)

    asyncio.run(measure())
    assert seen.observer.recovery is None
    assert "run.recovered" not in [e.name for e in seen.events]
