"""The check grammar turns `home >= 99%` into a verdict on known samples, and refuses the rest.

Every number here is computed by hand from the samples, so a change in rounding, in which probe
counts as the weakest, or in how a timed-out sample ranks shows up as a wrong value, not as a
flaky end-to-end run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from chaos.slo.checks import (CapacityCheck, Check, Sample, SloCheck, Status, all_pass, by_probe,
                              evaluate_all, parse_check, parse_slo_check, recovery_verdict)

PROBES = frozenset({"home", "api"})


def samples(probe: str, oks: str, latency: float = 0.1) -> list[Sample]:
    """`oks` like "++-+": one sample per character, + answered, - failed, t timed out."""
    return [Sample(probe, float(i), c == "+", 2.0 if c == "t" else latency,
                   "" if c == "+" else f"boom {i}", timed_out=c == "t")
            for i, c in enumerate(oks)]


def probe_check(text: str) -> Check:
    check = parse_check(text, PROBES)
    assert isinstance(check, Check), check
    return check


def slo_check(text: str) -> SloCheck:
    check = parse_check(text, PROBES)
    assert isinstance(check, SloCheck), check
    return check


@pytest.mark.parametrize(("text", "subject", "stat", "op", "threshold"), [
    ("home >= 99%", "home", "ratio", ">=", 0.99),
    ("home.latency.p95 < 300ms", "home", "p95", "<", 0.3),
    ("api.latency.max <= 1s", "api", "max", "<=", 1.0),
    ("api.latency.p99.9 < 2s", "api", "p99.9", "<", 2.0),
    ("all > 50%", "all", "ratio", ">", 0.5),
    ("  home != 0%  ", "home", "ratio", "!=", 0.0),
])
def test_probe_checks_parse_into_subject_statistic_and_threshold(
        text: str, subject: str, stat: str, op: str, threshold: float) -> None:
    check = probe_check(text)
    assert (check.subject, check.stat, check.op) == (subject, stat, op)
    assert check.threshold == pytest.approx(threshold)
    assert check.text == text.strip()


def test_all_lists_every_declared_probe() -> None:
    check = probe_check("all >= 90%")
    assert check.probes == ("api", "home")


@pytest.mark.parametrize(("text", "message"), [
    ("home.latency.p0 < 1s", "between p1 and p99.9"),
    ("home.latency.p100 < 1s", "use pNN (p50, p95, p99.9) or max"),
    ("home.latency.mean < 1s", "unknown latency statistic"),
    ("nope >= 99%", "names probe 'nope', which is not declared (probes: api, home)"),
    ("all.latency.p95 < 1s", "need a probe name, not `all`"),
    ("home is fine", "expected a check like `home >= 99%`"),
    ("home >= 99", "write it with a % sign"),
    ("home.latency.p95 < 300", "add a unit"),
    ("availability >= most", "expected a percentage"),
    ("latency.p0 < 1s", "between p1 and p99.9"),
    ("burn_rate(0s) < 2", "window longer than 0"),
    ("burn_rate(1m) < fast", "a burn rate is a plain factor"),
    ("availability ~ 99%", "expected a check like `availability >= 99.5%`"),
    ("capacity >= 800", "expected a rate like 200/s"),
])
def test_malformed_checks_are_refused_saying_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_check(text, PROBES)
    assert message in str(caught.value)


def test_the_unit_error_names_the_whole_check() -> None:
    with pytest.raises(ValueError, match=r"in 'latency.p95 < 350'"):
        parse_check("latency.p95 < 350", PROBES)


def test_without_declared_probes_the_message_says_none_declared() -> None:
    with pytest.raises(ValueError, match=r"probes: none declared"):
        parse_check("home >= 1%", frozenset())


@pytest.mark.parametrize(("text", "stat", "threshold", "param"), [
    ("availability >= 99.5%", "availability", 0.995, 0.0),
    ("error_rate < 1%", "error_rate", 0.01, 0.0),
    ("latency.p95 < 350ms", "p95", 0.35, 95.0),
    ("latency.fraction(<=350ms) >= 95%", "fraction", 0.95, 0.35),
    ("burn_rate(1m) < 14.4", "burn_rate", 14.4, 60.0),
])
def test_slo_checks_parse_with_their_parameter(text: str, stat: str, threshold: float,
                                               param: float) -> None:
    check = slo_check(text)
    assert check.stat == stat
    assert check.threshold == pytest.approx(threshold)
    assert check.param == pytest.approx(param)
    assert check.needs_objective is (stat == "burn_rate")


def test_a_probe_check_is_not_an_slo_check() -> None:
    assert parse_slo_check("home >= 99%") is None


def test_capacity_checks_are_requests_per_second() -> None:
    check = parse_check("capacity >= 30/m", PROBES)
    assert isinstance(check, CapacityCheck)
    assert check.threshold == pytest.approx(0.5)
    assert check.format(1234.4) == "1,234/s"


def test_a_success_ratio_is_successes_over_samples() -> None:
    check = probe_check("home >= 75%")
    verdict = check.evaluate(samples("home", "+++-"), window=4.0)
    assert verdict.status is Status.PASS
    assert verdict.value == pytest.approx(0.75)
    assert verdict.events == 4
    assert verdict.measured == "75%"


def test_a_failing_ratio_reports_the_last_failure() -> None:
    check = probe_check("home >= 80%")
    verdict = check.evaluate(samples("home", "+-+-+"), window=5.0)
    assert verdict.status is Status.FAIL
    assert verdict.value == pytest.approx(0.6)
    assert verdict.reason == "boom 3"
    assert not verdict.passed


def test_too_few_samples_are_no_data_never_a_pass() -> None:
    check = probe_check("home >= 1%")
    verdict = check.evaluate(samples("home", "++"), window=1.0)
    assert verdict.status is Status.NO_DATA
    assert verdict.reason == "2 sample(s) of home, need 3"
    assert verdict.measured is None


def test_a_known_failure_is_reported_even_when_another_probe_lacks_data() -> None:
    check = probe_check("all >= 90%")
    verdict = check.evaluate(samples("home", "-----") + samples("api", "+"), window=1.0)
    assert verdict.status is Status.FAIL
    assert verdict.value == 0.0


@pytest.mark.parametrize(("text", "weakest"), [("all >= 50%", 0.75), ("all <= 100%", 1.0)])
def test_all_reports_the_weakest_probe_for_its_bound(text: str, weakest: float) -> None:
    """The lowest ratio for a lower bound, the highest for an upper one."""
    verdict = probe_check(text).evaluate(samples("home", "++++") + samples("api", "++-+"), 1.0)
    assert verdict.status is Status.PASS
    assert verdict.value == pytest.approx(weakest)


@pytest.mark.parametrize(("stat", "expected"), [("p50", 0.2), ("p75", 0.3), ("p95", 0.4),
                                                 ("max", 0.4), ("p1", 0.1)])
def test_latency_percentiles_use_the_nearest_rank(stat: str, expected: float) -> None:
    mine = [Sample("api", float(i), True, latency) for i, latency in
            enumerate([0.4, 0.1, 0.3, 0.2])]
    check = probe_check(f"api.latency.{stat} < 1s")
    assert check.evaluate(mine, window=1.0).value == pytest.approx(expected)


def test_a_percentile_on_a_timed_out_sample_is_above_the_timeout() -> None:
    check = probe_check("home.latency.max < 1s")
    verdict = check.evaluate(samples("home", "++t"), window=1.0)
    assert verdict.status is Status.FAIL
    assert verdict.value is not None and math.isinf(verdict.value)
    assert verdict.measured == "> 2s"


def test_refused_requests_say_nothing_about_latency() -> None:
    check = probe_check("home.latency.max < 1s")
    verdict = check.evaluate(samples("home", "++-", latency=0.25), window=1.0)
    assert verdict.status is Status.PASS
    assert verdict.value == pytest.approx(0.25)


def test_only_failures_mean_no_successful_answer() -> None:
    check = probe_check("home.latency.p50 < 1s")
    verdict = check.evaluate(samples("home", "---"), window=1.0)
    assert verdict.status is Status.FAIL
    assert verdict.measured == "no successful answer"


def test_verdicts_describe_themselves_for_the_journal() -> None:
    check = probe_check("home >= 99%")
    verdict = check.evaluate(samples("home", "++++"), window=2.0)
    assert verdict.describe() == "home >= 99%: PASS (measured 100%, 4 events)"
    assert verdict.as_dict() == {
        "check": "home >= 99%", "status": "PASS", "value": 1.0, "measured": "100%",
        "threshold": 0.99, "window": 2.0, "events": 4, "source": "probe:home", "reason": ""}


def test_evaluate_all_and_all_pass_agree() -> None:
    checks = [parse_check("home >= 50%", PROBES), parse_check("api >= 50%", PROBES)]
    assert all(isinstance(c, Check) for c in checks)
    data = samples("home", "+++") + samples("api", "--+")
    verdicts = evaluate_all([c for c in checks if isinstance(c, Check)], data, 1.0)
    assert [v.status for v in verdicts] == [Status.PASS, Status.FAIL]
    assert not all_pass(verdicts)
    assert all_pass(verdicts[:1])


def test_samples_group_by_probe_in_order() -> None:
    grouped = by_probe(samples("a", "+-") + samples("b", "+") + samples("a", "+"))
    assert list(grouped) == ["a", "b"]
    assert [s.ok for s in grouped["a"]] == [True, False, True]


@pytest.mark.parametrize(("recovery", "status"), [(None, Status.FAIL), (4.0, Status.PASS),
                                                   (5.0, Status.PASS), (5.5, Status.FAIL)])
def test_recovery_is_judged_against_recover_within(recovery: float | None,
                                                   status: Status) -> None:
    verdict = recovery_verdict(recovery, 5.0)
    assert verdict.status is status
    assert verdict.check.text == "recover_within 5s"


@dataclass
class Measured:
    """Evidence as a traffic source reports it, with fixed numbers."""

    events: int = 100
    errors: int = 2
    invalid: str = ""
    detail: str = "HTTP 500"
    error: str = ""
    source: str = "traffic"

    def quantile(self, q: float) -> float | None:
        return q / 100  # p95 -> 0.95 s

    def fraction_at_most(self, seconds: float) -> float | None:
        return 0.9


@pytest.mark.parametrize(("text", "status", "value"), [
    ("availability >= 97%", Status.PASS, 0.98),
    ("availability >= 99%", Status.FAIL, 0.98),
    ("error_rate < 1%", Status.FAIL, 0.02),
    ("latency.p95 < 1s", Status.PASS, 0.95),
    ("latency.p50 < 400ms", Status.FAIL, 0.5),
    ("latency.fraction(<=350ms) >= 95%", Status.FAIL, 0.9),
    ("burn_rate(1m) < 5", Status.PASS, 4.0),
    ("burn_rate(1m) < 3", Status.FAIL, 4.0),
])
def test_slo_checks_judge_known_evidence(text: str, status: Status, value: float) -> None:
    check = slo_check(text)
    verdict = check.evaluate(lambda window: Measured(), 60.0, objective=0.995)
    assert verdict.status is status
    assert verdict.value == pytest.approx(value)
    assert verdict.reason == ("" if status is Status.PASS else "HTTP 500")


@pytest.mark.parametrize(("evidence", "status", "reason"), [
    (Measured(error="connection refused"), Status.ERROR, "connection refused"),
    (Measured(invalid="clock jumped"), Status.INVALID, "clock jumped"),
    (Measured(events=2), Status.NO_DATA, "2 event(s), need 3"),
])
def test_untrustworthy_evidence_is_never_a_pass(evidence: Measured, status: Status,
                                                reason: str) -> None:
    check = slo_check("availability >= 1%")
    verdict = check.evaluate(lambda window: evidence, 60.0)
    assert (verdict.status, verdict.reason) == (status, reason)


def test_a_burn_rate_asks_its_source_for_its_own_window() -> None:
    asked: list[float | None] = []
    check = slo_check("burn_rate(5m) < 14.4")
    check.evaluate(lambda window: asked.append(window) or Measured(), 60.0, objective=0.99)
    assert asked == [300.0]


@pytest.mark.parametrize(("search", "status", "reason"), [
    (None, Status.NO_DATA, "no breaking-point search had ended"),
    ({"invalid": "the server restarted"}, Status.INVALID, "could not decide: the server"),
    ({"sustainable_rate": 900, "steps": [{"requests": 10}, {"requests": 5}]}, Status.PASS, ""),
    ({"sustainable_rate": 500, "broken_at": 600, "broken_by": "latency", "faults": ["cpu"]},
     Status.FAIL, "sustainable 500 req/s with cpu, broke at 600 req/s (latency)"),
])
def test_capacity_floors_are_judged_on_the_search(search: dict[str, object] | None,
                                                  status: Status, reason: str) -> None:
    check = parse_check("capacity >= 800/s", PROBES)
    assert isinstance(check, CapacityCheck)
    verdict = check.judge(search, 30.0)
    assert verdict.status is status
    assert reason in verdict.reason
    if status is Status.PASS:
        assert verdict.events == 15

