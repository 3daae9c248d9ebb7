"""The observer, in-process: SLO checks over traffic windows whose measurements are known."""

from __future__ import annotations

import pytest

from chaos.errors import ExitCode
from chaos.slo.checks import Status
from tests.support.inprocess import KnownWindow, measured

CASES = [
    ("availability >= 99%", KnownWindow(1000, 10), Status.PASS, 0.99),
    ("availability >= 99%", KnownWindow(1000, 11), Status.FAIL, 0.989),
    ("availability > 99%", KnownWindow(1000, 10), Status.FAIL, 0.99),
    ("availability >= 99.5%", KnownWindow(200, 0), Status.PASS, 1.0),
    ("error_rate < 1%", KnownWindow(1000, 9), Status.PASS, 0.009),
    ("error_rate < 1%", KnownWindow(1000, 10), Status.FAIL, 0.01),
    ("latency.p95 < 350ms", KnownWindow(500, latency=0.349), Status.PASS, 0.349),
    ("latency.p95 < 350ms", KnownWindow(500, latency=0.351), Status.FAIL, 0.351),
    ("latency.p99 <= 1s", KnownWindow(500, latency=1.0), Status.PASS, 1.0),
    ("latency.fraction(<=350ms) >= 95%", KnownWindow(500, latency=0.2), Status.PASS, 1.0),
    ("latency.fraction(<=350ms) >= 95%", KnownWindow(500, latency=0.4), Status.FAIL, 0.0),
]


@pytest.mark.parametrize("check,window,status,value", CASES)
def test_an_slo_check_over_a_known_window(check: str, window: KnownWindow, status: Status,
                                          value: float) -> None:
    _, verdict = measured(check, window)
    assert verdict.status is status
    assert verdict.value == pytest.approx(value)
    assert verdict.events == window.events


@pytest.mark.parametrize("events", [0, 1, 19])
def test_too_few_requests_is_no_data_never_a_pass(events: int) -> None:
    _, verdict = measured("availability >= 1%", KnownWindow(events))
    assert verdict.status is Status.NO_DATA and not verdict.passed


@pytest.mark.parametrize("check", ["availability >= 99%", "latency.p95 < 350ms"])
def test_a_generator_that_could_not_keep_its_rate_makes_the_window_invalid(check: str) -> None:
    seen, verdict = measured(check, KnownWindow(1000, 500, invalid="the generator lagged 2s"))
    assert verdict.status is Status.INVALID and verdict.reason == "the generator lagged 2s"
    code, reason = seen.observer.invalid("before")
    assert code == ExitCode.INVALID and "invalid" in reason


def test_a_failing_source_is_an_error_not_a_verdict_about_the_service() -> None:
    seen, verdict = measured("availability >= 99%", KnownWindow(1000, error="connection refused"))
    assert verdict.status is Status.ERROR and not verdict.passed
    assert seen.observer.invalid("before") is None


def test_a_real_failure_is_not_excused_as_invalid() -> None:
    seen, verdict = measured("availability >= 99%", KnownWindow(1000, 500))
    assert verdict.status is Status.FAIL
    assert seen.observer.invalid("before") is None
    assert "availability" in seen.observer.failures("before")
