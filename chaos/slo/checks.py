"""The check grammar and verdicts.

    check     := subject OP value
    subject   := PROBE                  success ratio of that probe's samples in the window
               | PROBE.latency.pNN      latency percentile of its successful samples
               | PROBE.latency.max
               | all                    every probe's success ratio (the weakest one counts)
    OP        := >= | > | <= | < | == | !=
    value     := 99.5%  (ratios)  |  350ms, 1s  (latencies)

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

from chaos.units import format_duration, format_percent, parse_duration, parse_percent

MIN_EVENTS = 3

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
    latency: float  # seconds
    detail: str = ""  # why it failed, or what it saw


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

    def evaluate(self, samples: Sequence[Sample], window: float,
                 min_events: int = MIN_EVENTS) -> Verdict:
        """Judge the samples; for `all`, every declared probe must have enough samples and the
        weakest one is reported (the lowest for >=, the highest for <=)."""
        probes = (self.probes or tuple(sorted({s.probe for s in samples}))
                  if self.subject == "all" else (self.subject,))
        measured: list[tuple[float, int, str]] = []
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
            measured.append((value, len(mine), last_failure))
        failing = [m for m in measured if not self.holds(m[0])]
        if not failing and (no_data or not measured):  # a failure is known even if data is short
            return no_data or Verdict(self, Status.NO_DATA, None, 0, window, "no samples")
        lower_is_weaker = self.op in (">=", ">")
        pool = failing or measured
        value, count, failure = (min if lower_is_weaker else max)(pool, key=lambda m: m[0])
        status = Status.FAIL if failing else Status.PASS
        return Verdict(self, status, value, count, window,
                       failure if status is Status.FAIL else "")

    def _measure(self, samples: Sequence[Sample]) -> float | None:
        if not samples:
            return None
        if self.stat == "ratio":
            return sum(s.ok for s in samples) / len(samples)
        latencies = sorted(s.latency for s in samples if s.ok)
        if not latencies:
            return math.inf
        if self.stat == "max":
            return latencies[-1]
        rank = math.ceil(float(self.stat[1:]) / 100 * len(latencies))
        return latencies[max(rank, 1) - 1]


@dataclass(frozen=True)
class Verdict:
    check: Check
    status: Status
    value: float | None
    events: int
    window: float
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.status is Status.PASS

    def describe(self) -> str:
        measured = self.check.format(self.value) if self.value is not None else "n/a"
        return f"{self.check.text}: {self.status.value} (measured {measured}, {self.events} events)"

    def as_dict(self) -> dict[str, object]:
        return {"check": self.check.text, "status": self.status.value, "value": self.value,
                "measured": self.check.format(self.value) if self.value is not None else None,
                "threshold": self.check.threshold, "window": self.window,
                "events": self.events, "source": self.check.source,
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


def parse_check(text: str, probes: frozenset[str]) -> Check:
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
