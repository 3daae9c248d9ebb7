"""The numbers of docs/reports.md, on small hand-made journals: resilience score, time to
detect, error budget consumed, post-mortem selection."""

from __future__ import annotations

from typing import Any

import pytest

from chaos.reports import analysis
from chaos.reports.collection import Entry
from tests.support.journals import journal


def facts(verdict: str, statuses: list[str], weight: int = 1, **extra: Any) -> analysis.Facts:
    return analysis.facts(Entry(verdict, journal(verdict, statuses, **extra), weight=weight))


def test_the_resilience_score_is_a_weighted_pass_rate() -> None:
    held = facts("held", ["PASS", "PASS"], weight=2)
    deviated = facts("deviated", ["PASS", "FAIL", "NO_DATA", "PASS"])
    aborted = facts("aborted", ["PASS", "PASS"])  # passing before-checks do not lift an abort
    assert (held.score, deviated.score, aborted.score) == (1.0, 0.5, 0.0)
    assert analysis.resilience_score([held, deviated, aborted]) == pytest.approx(
        100 * (2 * 1.0 + 1 * 0.5 + 1 * 0.0) / 4)


def test_runs_that_measured_nothing_are_left_out() -> None:
    held = facts("held", ["PASS"])
    for verdict in ("steady-state-not-met", "error", "interrupted", "revert-failed"):
        assert facts(verdict, ["FAIL"]).score is None
    unweighted = facts("deviated", ["FAIL"], weight=0)
    skipped = analysis.facts(Entry("x.yaml", None, skipped="not started"))
    assert analysis.resilience_score([held, unweighted, skipped,
                                      facts("error", ["FAIL"])]) == 100.0
    assert analysis.resilience_score([skipped]) is None


def test_error_budget_is_burn_times_duration_over_period() -> None:
    series = [{"probe": "traffic", "t": t, "requests": 100, "errors": 2 if t == 3 else 0}
              for t in range(10)]
    f = facts("held", ["PASS"], series=series)
    assert f.budget is None  # no SLO: nothing to relate the errors to
    slo = {"title": "x", "faults": [], "slo": {"objective": 0.99, "period": 3600.0}}
    f = facts("held", ["PASS"], series=series, experiment=slo)
    assert f.budget is not None
    burn = (2 / 1000) / 0.01
    assert f.budget.burn == pytest.approx(burn)
    assert f.budget.consumed == pytest.approx(burn * 10 / 3600)
    # the hour's budget at 99% is 36 s of bad time; 0.2 x 10 s / 3600 s of it is 20 ms
    assert analysis.budget_text(f.budget) == "burn 0.2× · 20 ms of 36 s"


def test_time_to_detect_prefers_the_engine_then_the_series() -> None:
    injections = [{"fault": "f", "type": "process.suspend", "target": "t", "injected_at": 4.3,
                   "reverted_at": 7.3, "outcome": "reverted"}]
    series = [{"probe": "home", "t": t, "requests": 4, "errors": 4 if t in (5, 6) else 0,
               "p50": None, "p95": None, "max": None} for t in range(10)]
    f = facts("held", ["PASS"], injections=injections, series=series)
    assert (f.detect, f.detect_how) == (pytest.approx(0.7), "series")
    assert analysis.seconds_text(f.detect, True) == "<1s"
    f = facts("held", ["PASS"], injections=injections, series=series,
              detection={"seconds": 0.25})
    assert (f.detect, f.detect_how) == (0.25, "engine")
    assert facts("held", ["PASS"], series=series).detect is None  # nothing was injected


def test_post_mortems_for_failures_and_aborts_only() -> None:
    wanted = {v: facts(v, ["PASS"]).needs_postmortem for v in (
        "held", "deviated", "aborted", "revert-failed", "steady-state-not-met", "error",
        "interrupted")}
    assert wanted == {"held": False, "deviated": True, "aborted": True, "revert-failed": True,
                      "steady-state-not-met": True, "error": False, "interrupted": False}
