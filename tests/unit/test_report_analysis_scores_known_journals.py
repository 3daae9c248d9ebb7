"""Report analysis on small journals whose numbers are worked out by hand.

Scores, the error budget, the time-to-detect wording and the summary cells are what every report
format shows; here they are computed from fixture journals without rendering any report.
"""

from __future__ import annotations

from typing import Any

import pytest

from chaos.reports.analysis import (Budget, budget, budget_text, bucket_seconds,
                                    experiment_score, facts, mean_time_to_detect,
                                    resilience_score, score_text, share_text, summary_cells)
from chaos.reports.collection import Entry

try:  # journals read as typed records (chaos.records); before that, reports read the dicts
    from chaos.records.run import RunRecord
except ImportError:  # pragma: no cover - the layout before the records
    RunRecord = None


def journal(verdict: str = "held", statuses: tuple[str, ...] = ("PASS", "PASS", "FAIL"),
            series: list[dict[str, Any]] | None = None,
            slo: dict[str, Any] | None = None) -> Any:
    checks = [{"check": f"c{i}", "status": s} for i, s in enumerate(statuses)]
    data = {"schema": "chaos.journal/v1",
            "experiment": {"title": "Checkout holds", "source": "./experiments/../x.yaml",
                           **({"slo": slo} if slo else {})},
            "verdict": verdict, "exit_code": 0 if verdict == "held" else 1, "run": "r-1",
            "duration": 12.0, "phases": {"before": {"checks": checks[:1]},
                                         "after": {"checks": checks[1:]}},
            "series": series or [], "recovery": {"seconds": 2.5, "within": 5.0}}
    return RunRecord.from_json(data, "fixture") if RunRecord is not None else data


TRAFFIC = [{"probe": "traffic", "t": t, "requests": 100, "errors": e}
           for t, e in ((0, 0), (1, 2), (2, 0), (3, 0))]


@pytest.mark.parametrize(("verdict", "passed", "evaluated", "score"), [
    ("held", 3, 4, 0.75), ("deviated", 0, 2, 0.0), ("aborted", 5, 5, 0.0),
    ("held", 0, 0, None), ("skipped", 1, 1, None), ("revert-failed", 1, 2, None),
])
def test_an_experiment_scores_its_pass_rate_and_an_abort_scores_zero(
        verdict: str, passed: int, evaluated: int, score: float | None) -> None:
    assert experiment_score(verdict, passed, evaluated) == score


def test_facts_count_checks_and_keep_the_failing_ones_with_their_phase() -> None:
    f = facts(Entry("x.yaml", journal(), weight=2))
    assert (f.title, f.verdict, f.passed, f.evaluated) == ("Checkout holds", "held", 2, 3)
    assert f.score == pytest.approx(2 / 3)
    [failing] = f.failing  # the check and its phase, however the record spells them
    assert "c2" in str(failing) and "after" in str(failing) and "c1" not in str(failing)
    assert (f.recover, f.recover_within, f.source) == (2.5, 5.0, "x.yaml")
    assert not f.needs_postmortem


def test_an_experiment_that_did_not_run_is_skipped_with_its_reason() -> None:
    f = facts(Entry("y.yaml", None, skipped="stopped at the first abort", title="Y"))
    assert (f.verdict, f.reason, f.score, f.title) == ("skipped", "stopped at the first abort",
                                                       None, "Y")
    assert summary_cells(3, f) == ("3", "Y", "skipped", "—", "—", "—", "—", "—", "—", "1")


def test_the_resilience_score_is_the_weighted_mean_of_scored_experiments() -> None:
    all_facts = [facts(Entry("a", journal(statuses=("PASS", "PASS")), weight=3)),
                 facts(Entry("b", journal(statuses=("FAIL", "PASS")), weight=1)),
                 facts(Entry("c", journal(statuses=("FAIL",)), weight=0)),
                 facts(Entry("d", None))]
    assert resilience_score(all_facts) == pytest.approx(100 * (3 * 1.0 + 1 * 0.5) / 4)
    assert resilience_score(all_facts[2:]) is None


def test_the_error_budget_is_burn_rate_times_measured_seconds_over_the_period() -> None:
    b = budget(journal(series=TRAFFIC, slo={"objective": 0.99, "period": 86400}))
    assert b is not None
    assert (b.events, b.bad, b.seconds) == (400, 2, 4.0)
    assert b.burn == pytest.approx(0.5)
    assert b.consumed == pytest.approx(0.5 * 4 / 86400)
    assert budget_text(b) == "burn 0.5× · 20 ms of 14.4 min"


@pytest.mark.parametrize("slo", [None, {"objective": 1.0}, {"objective": None}])
def test_without_a_usable_objective_there_is_no_budget(slo: dict[str, Any] | None) -> None:
    assert budget(journal(series=TRAFFIC, slo=slo)) is None
    assert budget_text(None) == "—"


def test_without_events_there_is_no_budget() -> None:
    assert budget(journal(series=[], slo={"objective": 0.99})) is None


@pytest.mark.parametrize(("span", "bound", "seconds"), [
    (60, 600, 1), (600, 600, 1), (601, 600, 2), (3000, 600, 5), (86400, 100, 900),
    (360000, 10, 36000),
])
def test_long_series_are_cut_into_readable_buckets(span: float, bound: int,
                                                   seconds: int) -> None:
    assert bucket_seconds(span, bound) == seconds


@pytest.mark.parametrize(("fraction", "text"), [(0.5, "50%"), (0.0, "0%"), (0.1234, "12.34%"),
                                                (7.7e-6, "0.00077%")])
def test_tiny_shares_stay_readable(fraction: float, text: str) -> None:
    assert share_text(fraction) == text


def test_scores_read_out_of_a_hundred() -> None:
    assert (score_text(None), score_text(87.4)) == ("n/a", "87/100")


def test_mttd_averages_only_what_monitoring_detected() -> None:
    alerted = facts(Entry("a", journal()))
    assert mean_time_to_detect([alerted]) is None  # no expected alerts in this journal


def test_summary_cells_show_score_checks_and_recovery() -> None:
    cells = summary_cells(1, facts(Entry("a", journal(statuses=("PASS", "FAIL")))))
    assert cells[:6] == ("1", "Checkout holds", "held", "50", "1/2", "—")
    assert cells[6] == "2.5s"
    assert cells[8:] == ("12s", "1")


def test_a_budget_is_a_plain_record() -> None:
    b = Budget(0.999, 2592000.0, 10, 0, 1.0, 0.0, 0.0)
    assert budget_text(b) == "burn 0× · 0 s of 43.2 min"
