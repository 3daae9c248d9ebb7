"""The check grammar and verdicts.

    check     := subject OP value
    subject   := PROBE                  success ratio of that probe's samples in the window
               | PROBE.latency.pNN      latency percentile of its answered and timed-out samples
               | PROBE.latency.max      (a timed-out one is slower than any answer: `> 1s`)
               | all                    every probe's success ratio (the weakest one counts)
    OP        := >= | > | <= | < | == | !=
    value     := 99.5%  (ratios)  |  350ms, 1s  (latencies)

Over a traffic or Prometheus source (SloCheck):

    slo_check := availability OP 99.5%          good events / all events
               | error_rate OP 1%               bad events / all events
               | latency.pNN OP 350ms           percentile of every request's latency
               | latency.fraction(<=350ms) OP 95%   share of requests at most that slow
               | burn_rate(1m) OP 14.4          error rate over the last 1m / (1 - objective)

Over a breaking-point search (CapacityCheck, in `checks` only):

    capacity_check := capacity OP 800/s  the sustainable rate of the newest search that had
                                         started by the end of the window (with `under_fault`,
                                         the search with the faults held, once it started)

A check turns a window of samples into a Verdict: PASS / FAIL / NO_DATA (too few events, never
a pass) / ERROR, with the measured value, the threshold, the window and the event count.
"""

from __future__ import annotations

import enum
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from chaos.model.advice import MIN_PROBE_SAMPLES
from chaos.model.experiment import CheckNeeds, ParsedCheck
from chaos.units import (format_duration, format_percent, parse_duration, parse_percent,
                         parse_rate)

MIN_EVENTS = MIN_PROBE_SAMPLES  # the model warns about windows too short for it

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
    "==": operator.eq, "!=": operator.ne,
}
_CHECK = re.compile(
    r"\s*(?P<subject>[A-Za-z0-9_.-]+?)(?:\.latency\.(?P<stat>p\d{1,2}(?:\.\d+)?|max))?"
    r"\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>\S+)\s*"
)


class Status(enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    NO_DATA = "NO_DATA"
    INVALID = "INVALID"
    ERROR = "ERROR"


@dataclass(frozen=True)
class Sample:
    """One probe result."""

    probe: str
    at: float  # monotonic seconds when the probe was sent
    ok: bool
    latency: float  # seconds from `at`; for a timed-out sample the timeout (a lower bound)
    detail: str = ""  # why it failed, or what it saw
    timed_out: bool = False  # no answer within the timeout: the latency is unknown, greater


@dataclass(frozen=True)
class Check:
    text: str
    subject: str  # probe name, or "all"
    stat: str  # "ratio", "max", "pNN" or "recovery"
    op: str
    threshold: float  # fraction for ratios, seconds for latencies
    probes: tuple[str, ...] = ()  # for `all`: every declared probe

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)

    def format(self, value: float) -> str:
        if self.stat == "ratio":
            return format_percent(value)
        return "no successful answer" if math.isinf(value) else format_duration(value)

    @property
    def source(self) -> str:
        return "recovery" if self.stat == "recovery" else f"probe:{self.subject}"

    @property
    def needs(self) -> CheckNeeds:
        latency = self.stat.startswith("p") or self.stat == "max"
        return CheckNeeds("probe", subject=self.subject,
                          latency_bound=self.threshold if latency else None)

    def evaluate(self, samples: Sequence[Sample], window: float,
                 min_events: int = MIN_EVENTS) -> Verdict:
        """Judge the samples; for `all`, every declared probe must have enough samples and the
        weakest one is reported (the lowest for >=, the highest for <=)."""
        probes = (self.probes or tuple(sorted({s.probe for s in samples}))
                  if self.subject == "all" else (self.subject,))
        measured: list[tuple[float, int, str, float | None]] = []
        no_data: Verdict | None = None
        for probe in probes:
            mine = [s for s in samples if s.probe == probe]
            value = self._measure(mine)
            if value is None or len(mine) < min_events:
                no_data = no_data or Verdict(self, Status.NO_DATA, None, len(mine), window,
                                             f"{len(mine)} sample(s) of {probe}, need "
                                             f"{min_events}")
                continue
            last_failure = next((s.detail for s in reversed(mine) if not s.ok), "")
            timeout = max((s.latency for s in mine if s.timed_out), default=None)
            measured.append((value, len(mine), last_failure, timeout))
        failing = [m for m in measured if not self.holds(m[0])]
        if not failing and (no_data or not measured):  # a failure is known even if data is short
            return no_data or Verdict(self, Status.NO_DATA, None, 0, window, "no samples")
        lower_is_weaker = self.op in (">=", ">")
        pool = failing or measured
        value, count, failure, timeout = (min if lower_is_weaker else max)(
            pool, key=lambda m: m[0])
        status = Status.FAIL if failing else Status.PASS
        return Verdict(self, status, value, count, window,
                       failure if status is Status.FAIL else "",
                       above=timeout if math.isinf(value) and self.stat != "ratio" else None)

    def _measure(self, samples: Sequence[Sample]) -> float | None:
        if not samples:
            return None
        if self.stat == "ratio":
            return sum(s.ok for s in samples) / len(samples)
        # successes and timeouts: a timed-out sample was slower than any answer (its latency is
        # unknown, above the timeout), so a percentile falling on one is infinite and fails;
        # other failures (refused, HTTP 500) answered and say nothing about latency
        latencies = sorted([s.latency for s in samples if s.ok] +
                           [math.inf for s in samples if s.timed_out])
        if not latencies:
            return math.inf
        if self.stat == "max":
            return latencies[-1]
        rank = math.ceil(float(self.stat[1:]) / 100 * len(latencies))
        return latencies[max(rank, 1) - 1]


@dataclass(frozen=True)
class CapacityCheck:
    """A capacity floor (`capacity >= 800/s`), judged on a breaking-point search's result."""

    text: str
    op: str
    threshold: float  # requests per second
    stat = "capacity"
    source = "capacity"
    needs = CheckNeeds("search")

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)

    def format(self, value: float) -> str:
        return f"{value:,.0f}/s"

    def judge(self, search: Mapping[str, object] | None, window: float) -> Verdict:
        """The search's sustainable rate against the floor; undecided is INVALID, never a
        pass; no search at all is NO_DATA."""
        if search is None:
            return Verdict(self, Status.NO_DATA, None, 0, window,
                           "no breaking-point search had ended by the end of this window")
        steps = search.get("steps")
        events = sum(int(s.get("requests", 0)) for s in steps) if isinstance(steps, list) else 0
        if search.get("invalid"):
            return Verdict(self, Status.INVALID, None, events, window,
                           f"the search could not decide: {search['invalid']}")
        rate = search.get("sustainable_rate")
        value = float(rate) if isinstance(rate, (int, float)) else 0.0  # not even the first
        faults = search.get("faults")
        reason = "" if self.holds(value) else (
            f"sustainable {value:,.0f} req/s" + (
                f" with {', '.join(map(str, faults))}" if isinstance(faults, list) and faults
                else "") + f", broke at {search.get('broken_at')} req/s "
                           f"({search.get('broken_by')})")
        return Verdict(self, Status.PASS if self.holds(value) else Status.FAIL, value, events,
                       window, reason)


_CAPACITY = re.compile(r"\s*capacity\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>\S+)\s*")


def parse_capacity_check(text: str) -> CapacityCheck | None:
    """A CapacityCheck, None when the text is not one, or ValueError."""
    match = _CAPACITY.fullmatch(text)
    if not match:
        return None
    return CapacityCheck(text.strip(), match["op"], _unit(parse_rate, match["value"], text))


@dataclass(frozen=True)
class Verdict:
    check: Check | SloCheck | CapacityCheck
    status: Status
    value: float | None
    events: int
    window: float
    reason: str = ""
    source: str = ""  # where the events came from, when the check does not say
    above: float | None = None  # an infinite latency fell on timed-out events: > this timeout

    @property
    def passed(self) -> bool:
        return self.status is Status.PASS

    @property
    def measured(self) -> str | None:
        if self.value is None:
            return None
        if self.above is not None and math.isinf(self.value):
            return f"> {format_duration(self.above)}"  # timed out: unknown, above the timeout
        return self.check.format(self.value)

    def describe(self) -> str:
        return (f"{self.check.text}: {self.status.value} (measured {self.measured or 'n/a'}, "
                f"{self.events} events)")

    def as_dict(self) -> dict[str, object]:
        return {"check": self.check.text, "status": self.status.value, "value": self.value,
                "measured": self.measured,
                "threshold": self.check.threshold, "window": self.window,
                "events": self.events, "source": self.source or self.check.source,
                "reason": self.reason}


def recovery_verdict(recovery: float | None, within: float) -> Verdict:
    """`recover_within` as a verdict: the checks held again within this after the last revert."""
    check = Check(f"recover_within {format_duration(within)}", "recovery", "recovery", "<=",
                  within)
    if recovery is None:
        return Verdict(check, Status.FAIL, None, 0, within,
                       f"the checks did not hold again within {format_duration(within)}")
    status = Status.PASS if recovery <= within else Status.FAIL
    return Verdict(check, status, recovery, 1, within)


def grammar(parsed: ParsedCheck) -> Check | SloCheck | CapacityCheck:
    """A model check's parsed form as this grammar's own type (the model knows it only as a
    ParsedCheck: what it needs, not how it is judged)."""
    if not isinstance(parsed, (Check, SloCheck, CapacityCheck)):
        raise TypeError(f"not a check of chaos.slo.checks: {parsed!r}")
    return parsed


def parse_check(text: str, probes: frozenset[str]) -> Check | SloCheck | CapacityCheck:
    capacity = parse_capacity_check(text)
    if capacity is not None:
        return capacity
    slo = parse_slo_check(text)
    if slo is not None:
        return slo
    match = _CHECK.fullmatch(text)
    if match and ".latency." in match["subject"]:
        raise ValueError(f"unknown latency statistic in {text!r}: use pNN (p50, p95, p99.9) "
                         "or max")
    if not match:
        raise ValueError(f"expected a check like `home >= 99%` or `home.latency.p95 < 300ms`, "
                         f"got {text!r}")
    subject, stat, op, raw = match["subject"], match["stat"] or "ratio", match["op"], match["value"]
    if subject != "all" and subject not in probes:
        known = ", ".join(sorted(probes)) or "none declared"
        raise ValueError(f"check {text!r} names probe {subject!r}, which is not declared "
                         f"(probes: {known})")
    if stat == "ratio":
        threshold = parse_percent(raw)
    else:
        if subject == "all":
            raise ValueError("latency checks need a probe name, not `all`")
        if stat != "max" and not 0 < float(stat[1:]) < 100:
            raise ValueError(f"percentile must be between p1 and p99.9, got {stat}")
        threshold = parse_duration(raw)
    return Check(text.strip(), subject, stat, op, threshold,
                 tuple(sorted(probes)) if subject == "all" else ())


def evaluate_all(checks: Iterable[Check], samples: Sequence[Sample], window: float,
                 min_events: int = MIN_EVENTS) -> list[Verdict]:
    return [c.evaluate(samples, window, min_events) for c in checks]


def all_pass(verdicts: Iterable[Verdict]) -> bool:
    return all(v.passed for v in verdicts)


def by_probe(samples: Iterable[Sample]) -> Mapping[str, list[Sample]]:
    grouped: dict[str, list[Sample]] = {}
    for s in samples:
        grouped.setdefault(s.probe, []).append(s)
    return grouped


# --- checks over a traffic or Prometheus source

_SLO = re.compile(
    r"\s*(?P<subject>availability|error_rate|latency\.(?P<pct>p\d{1,2}(?:\.\d+)?)"
    r"|latency\.fraction\(\s*<=\s*(?P<le>[^)\s]+)\s*\)|burn_rate\(\s*(?P<burn>[^)\s]+)\s*\))"
    r"\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>\S+)\s*"
)
_SLO_START = re.compile(r"\s*(availability|error_rate|latency\.|burn_rate)\b")


class Evidence(Protocol):
    """What a source measured over one window (chaos.slo.traffic.Window, Prometheus answers)."""

    source: str
    error: str  # the source failed: ERROR with this message

    @property
    def events(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def invalid(self) -> str: ...  # the measurement cannot be trusted: INVALID with this
    @property
    def detail(self) -> str: ...  # the last error seen, for FAIL reasons
    def quantile(self, q: float) -> float | None: ...  # inf: above the timeout (timed out)
    def fraction_at_most(self, seconds: float) -> float | None: ...


@dataclass(frozen=True)
class SloCheck:
    text: str
    stat: str  # availability | error_rate | pNN | fraction | burn_rate
    op: str
    threshold: float  # fraction, seconds, or a plain factor for burn_rate
    param: float = 0.0  # percentile, the fraction's latency bound, or the burn-rate window

    source = "traffic"

    @property
    def needs_objective(self) -> bool:
        return self.stat == "burn_rate"

    @property
    def needs(self) -> CheckNeeds:
        ratio = self.stat in ("availability", "error_rate", "burn_rate")
        bound = (self.param if self.stat == "fraction" else
                 self.threshold if self.stat.startswith("p") else None)
        return CheckNeeds("events", ("good", "total") if ratio else ("latency",),
                          needs_objective=self.needs_objective, latency_bound=bound,
                          stops_search=self.stat != "burn_rate")

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)

    def format(self, value: float) -> str:
        if self.stat.startswith("p"):
            return format_duration(value)
        if self.stat == "burn_rate":
            return f"{value:.2f}"
        return format_percent(value)

    def evaluate(self, measure: Callable[[float | None], Evidence], window: float,
                 objective: float | None = None, min_events: int = MIN_EVENTS) -> Verdict:
        """Judge the source's evidence: `measure(None)` is the whole window, `measure(W)` its
        last W seconds (burn rates)."""
        evidence = measure(self.param if self.stat == "burn_rate" else None)
        def verdict(status: Status, value: float | None = None, reason: str = "") -> Verdict:
            above = None
            if value is not None and math.isinf(value):  # fell on timed-out requests: `> 2s`
                timeout = getattr(evidence, "timeout", math.inf)  # traffic's Window says it
                above = None if math.isinf(timeout) else timeout
            return Verdict(self, status, value, evidence.events, window, reason,
                           evidence.source, above=above)
        if evidence.error:
            return verdict(Status.ERROR, reason=evidence.error)
        if evidence.invalid:
            return verdict(Status.INVALID, reason=evidence.invalid)
        if evidence.events < min_events:
            return verdict(Status.NO_DATA, reason=f"{evidence.events} event(s), need "
                                                  f"{min_events}")
        value = self._measure(evidence, objective)
        if value is None:
            return verdict(Status.NO_DATA, reason="the source has no value for this")
        if self.holds(value):
            return verdict(Status.PASS, value)
        return verdict(Status.FAIL, value, evidence.detail)

    def _measure(self, evidence: Evidence, objective: float | None) -> float | None:
        error_rate = evidence.errors / evidence.events
        if self.stat == "availability":
            return 1.0 - error_rate
        if self.stat == "error_rate":
            return error_rate
        if self.stat == "burn_rate":
            assert objective is not None, "the loader refuses burn_rate without an objective"
            return error_rate / max(1.0 - objective, 1e-9)
        if self.stat == "fraction":
            return evidence.fraction_at_most(self.param)
        return evidence.quantile(self.param)


def parse_slo_check(text: str) -> SloCheck | None:
    """An SloCheck, None when the text is not one (then it is a probe check), or ValueError."""
    if not _SLO_START.match(text):
        return None
    match = _SLO.fullmatch(text)
    if not match:
        raise ValueError(
            f"expected a check like `availability >= 99.5%`, `error_rate < 1%`, "
            f"`latency.p95 < 350ms`, `latency.fraction(<=350ms) >= 95%` or "
            f"`burn_rate(1m) < 14.4`, got {text!r}")
    op, raw, subject = match["op"], match["value"], match["subject"]
    if match["pct"]:
        q = float(match["pct"][1:])
        if not 0 < q < 100:
            raise ValueError(f"percentile must be between p1 and p99.9, got {match['pct']}")
        return SloCheck(text.strip(), match["pct"], op, _unit(parse_duration, raw, text), q)
    if match["le"]:
        bound = _unit(parse_duration, match["le"], text)
        return SloCheck(text.strip(), "fraction", op, _unit(parse_percent, raw, text), bound)
    if match["burn"]:
        window = _unit(parse_duration, match["burn"], text)
        if window <= 0:
            raise ValueError("burn_rate needs a window longer than 0, like burn_rate(1m)")
        try:
            factor = float(raw)
        except ValueError:
            raise ValueError(f"a burn rate is a plain factor like 14.4 (how many times faster "
                             f"than the objective allows), got {raw!r} in {text!r}") from None
        return SloCheck(text.strip(), "burn_rate", op, factor, window)
    return SloCheck(text.strip(), subject, op, _unit(parse_percent, raw, text))


def _unit(parse: Callable[[object], float], raw: str, text: str) -> float:
    try:
        return parse(raw)
    except ValueError as exc:
        raise ValueError(f"{exc} (in {text!r})") from None
