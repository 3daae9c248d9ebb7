"""The numbers people read in a report, derived from a journal once for every format.

Chart series (availability and latency over time), fault windows, guardrail breaches, time to
detect and to recover, error budget consumed and the resilience score are defined here, and
documented in docs/reports.md; HTML, Markdown and post-mortems only lay them out.

Times are seconds since the run started. Probe rows of the journal's `series` are placed at
their second (`t`); traffic rows count from the start of the traffic, which begins with the
`before` phase, so they are placed at `phases.before.started + t`.
"""

from __future__ import annotations

import bisect
import re
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaos.records import FAILING, CheckVerdict, Recovery, RunRecord, SeriesPoint
from chaos.reports.collection import Collection, Entry
from chaos.units import format_duration

DEFAULT_PERIOD = 30 * 86400.0  # an SLO without `period` is promised over 30 days
SCORED = {"held", "deviated", "aborted"}  # the verdicts that measured the system


@dataclass(frozen=True)
class Line:
    name: str
    points: tuple[tuple[float, float], ...]  # (seconds since the run started, value)


@dataclass(frozen=True)
class Window:
    name: str
    start: float
    end: float


@dataclass(frozen=True)
class Budget:
    objective: float  # e.g. 0.995
    period: float  # seconds
    events: int
    bad: int
    seconds: float  # how long the events were measured over
    burn: float  # error ratio / (1 - objective)
    consumed: float  # burn * seconds / period: the share of the period's budget used


@dataclass(frozen=True)
class Facts:
    label: str
    title: str
    verdict: str  # a journal verdict, or "skipped"
    exit_code: int | None
    reason: str
    weight: int
    run: str | None = None
    source: str = ""  # the experiment file, as `chaos run` was given it (normalised)
    duration: float = 0.0
    passed: int = 0
    evaluated: int = 0
    score: float | None = None  # 0..1; None: not scored (see SCORED)
    failing: tuple[tuple[str, CheckVerdict], ...] = ()  # (phase, verdict) of failing checks
    availability: tuple[Line, ...] = ()
    latency: tuple[Line, ...] = ()
    faults: tuple[Window, ...] = ()
    phases: tuple[Window, ...] = ()
    breaches: tuple[tuple[float, str], ...] = ()
    detect: float | None = None
    detect_how: str = ""  # "alerts" (detection.alerts: monitoring noticed), "missed" (it did not),
    # "engine" (journal `detection`: a check failed) or "series" (first error seen)
    # expected alerts (name, seconds from the first injection to firing or None, status)
    alerts: tuple[tuple[str, float | None, str], ...] = ()
    alert_marks: tuple[tuple[float, str], ...] = ()  # (t, name) where an alert first fired
    recover: float | None = None
    recover_within: float | None = None  # the after phase's `recover_within`, if any
    budget: Budget | None = None
    end: float = 0.0
    # a short run's series per tick (journal `fine_series`), charted instead of the seconds
    fine_step: float | None = None
    fine_availability: tuple[Line, ...] = ()
    fine_latency: tuple[Line, ...] = ()

    @property
    def needs_postmortem(self) -> bool:
        return self.verdict in ("deviated", "aborted", "revert-failed", "steady-state-not-met")


def facts(entry: Entry) -> Facts:
    j = entry.journal
    if j is None:
        return Facts(entry.label, entry.title or entry.label, "skipped", None, entry.skipped,
                     entry.weight)
    checks = j.checks()
    passed = sum(c.status == "PASS" for _, c in checks)
    availability, latency = _lines(j, j.series)
    fine = j.fine_series
    fine_availability, fine_latency = _lines(j, fine.points) if fine else ((), ())
    faults = _fault_windows(j)
    breaches = tuple((float(e.t or 0.0), str(e.get("check") or "")) for e in j.events
                     if e.name == "guardrail.breached")
    alerts, marks = _alerts(j)
    detect, how = _detection(j, availability, breaches, faults)
    if alerts:  # monitoring's own detection is what the time to detect means to an SRE
        fired = [seconds for _, seconds, status in alerts if seconds is not None]
        detect, how = (min(fired), "alerts") if fired else (None, "missed")
    end = max([float(j.duration or 0.0)] + [w.end for w in faults] +
              [p[0] + 1 for line in availability for p in line.points[-1:]])
    verdict = str(j.verdict)
    recovery = j.recovery or Recovery()
    return Facts(
        label=entry.label, title=str(j.experiment.title), verdict=verdict,
        exit_code=int(j.exit_code or 0), reason=str(j.reason or ""), weight=entry.weight,
        run=j.run, source=_normalised(j.experiment.source),
        duration=float(j.duration or 0.0), passed=passed,
        evaluated=len(checks), score=experiment_score(verdict, passed, len(checks)),
        failing=tuple((phase, c) for phase, c in checks if c.status in FAILING),
        availability=availability, latency=latency, faults=faults, phases=_phases(j),
        breaches=breaches, detect=detect, detect_how=how, alerts=alerts, alert_marks=marks,
        recover=recovery.seconds, recover_within=recovery.within, budget=budget(j), end=end,
        fine_step=float(fine.step) if fine and fine.step else None,
        fine_availability=fine_availability, fine_latency=fine_latency,
    )


def _normalised(path: object) -> str:
    return os.path.normpath(str(path)) if path else ""


def experiment_score(verdict: str, passed: int, evaluated: int) -> float | None:
    """Pass rate of the checks; an abort scores 0; runs that measured nothing are not scored."""
    if verdict == "aborted":
        return 0.0
    if verdict not in SCORED or evaluated == 0:
        return None
    return passed / evaluated


def resilience_score(all_facts: Iterable[Facts]) -> float | None:
    """Weighted mean of the experiments' scores, 0-100; None when nothing was scored."""
    scored = [(f.weight, f.score) for f in all_facts if f.score is not None and f.weight > 0]
    total = sum(w for w, _ in scored)
    return None if not total else 100.0 * sum(w * s for w, s in scored) / total


def traffic_offset(journal: RunRecord) -> float:
    return float(journal.phase("before").started or 0.0)


def _lines(j: RunRecord, series: Sequence[SeriesPoint]) -> tuple[tuple[Line, ...],
                                                                  tuple[Line, ...]]:
    offset = traffic_offset(j)
    rows: dict[str, list[tuple[float, SeriesPoint]]] = {}
    for row in series:
        probe = str(row.probe)
        x = float(row.t or 0) + (offset if probe == "traffic" else 0.0)
        rows.setdefault(probe, []).append((x, row))
    availability, latency = [], []
    for probe, points in rows.items():
        availability.append(Line(probe, tuple(
            (x, (r.requests - (r.errors or 0)) / r.requests) for x, r in points
            if r.requests)))
        stats = ("p50", "p95", "p99") if probe == "traffic" else ("p50", "p95", "max")
        for stat in stats:
            line = tuple((x, v) for x, r in points if (v := r.stat(stat)) is not None)
            if line:
                latency.append(Line(f"{probe} {stat}", line))
    return tuple(availability), tuple(latency)


# --- long series on a page: buckets of whole seconds, each drawn as its worst second
READABLE_BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def bucket_seconds(span: float, bound: int) -> int:
    """The shortest readable bucket length, in whole seconds, that covers `span` seconds in
    at most `bound` buckets (1 when every second fits)."""
    need = span / max(bound, 1)
    readable = next((n for n in READABLE_BUCKETS if n >= need), None)
    return readable if readable is not None else 3600 * math.ceil(need / 3600)


def worst_per_bucket(line: Line, seconds: int,
                     worst: Callable[[Sequence[float]], float]) -> Line:
    """Consecutive seconds merged into buckets of `seconds`, each at its start with the value of
    its worst second (`worst` is `min` for availability, `max` for latency): a one-second outage
    in a one-minute bucket shows at full depth, never averaged away. Buckets start at whole
    multiples of `seconds` from the series' own offset within a second (traffic rows sit at
    `before.started + t`), so each second lies in exactly one bucket."""
    if seconds <= 1 or not line.points:
        return line
    points = sorted(line.points)
    times, values = [t for t, _ in points], [v for _, v in points]
    origin = times[0] % 1.0
    merged, i = [], 0
    while i < len(times):
        start = origin + math.floor((times[i] - origin) / seconds + 1e-9) * seconds
        j = bisect.bisect_left(times, start + seconds - 1e-9, i + 1)
        merged.append((start, worst(values[i:j])))
        i = j
    return Line(line.name, tuple(merged))


def _fault_windows(j: RunRecord) -> tuple[Window, ...]:
    durations = {f.name: float(f.duration or 0.0) for f in j.experiment.faults}
    windows = []
    for inj in j.injections:
        start = inj.injected_at
        if start is None:
            continue
        end = inj.reverted_at
        if end is None:
            end = start + durations.get(inj.fault, 0.0)
        windows.append(Window(str(inj.fault), float(start), float(max(end, start))))
    return tuple(windows)


def _phases(j: RunRecord) -> tuple[Window, ...]:
    """Each phase's window; one cut short by a signal or an abort ends with the run."""
    end = float(j.duration or 0.0)
    return tuple(Window(name, float(p.started), float(p.finished or max(end, float(p.started))))
                 for name, p in j.phases.items() if p.started is not None)


def _detection(j: RunRecord, availability: Sequence[Line],
               breaches: Sequence[tuple[float, str]],
               faults: Sequence[Window]) -> tuple[float | None, str]:
    engine = j.detection.seconds if j.detection else None
    if engine is not None:
        return float(engine), "engine"
    if not faults:
        return None, ""
    first = min(w.start for w in faults)
    seen = [t - first for t, _ in breaches if t >= first]
    for line in availability:
        seen += [max(0.0, x - first) for x, v in line.points if v < 1.0 and x + 1 > first]
    return (min(seen), "series") if seen else (None, "")


def _alerts(j: RunRecord) -> tuple[tuple[tuple[str, float | None, str], ...],
                                   tuple[tuple[float, str], ...]]:
    """Expected alerts as measured (journal detection.alerts), and where any alert fired."""
    # one payload per alert.measured event (its fields: chaos.runner.events)
    records: list[Mapping[str, Any]] = list(j.detection.alerts) if j.detection else []

    def name(a: Mapping[str, Any]) -> str:
        labels = a.get("labels") or {}
        return str(labels.get("alertname") or a.get("alert") or "alert")

    expected = tuple((name(a), a.get("time_to_detect"), str(a.get("status") or ""))
                     for a in records if a.get("expected"))
    marks = tuple((float(a["first_firing"]), name(a)) for a in records
                  if a.get("first_firing") is not None)
    return expected, marks


def mean_time_to_detect(all_facts: Iterable[Facts]) -> float | None:
    """MTTD across experiments: the mean of the times monitoring took (expected alerts)."""
    seen = [f.detect for f in all_facts if f.detect_how == "alerts" and f.detect is not None]
    return sum(seen) / len(seen) if seen else None


def budget(j: RunRecord) -> Budget | None:
    """Error budget consumed: burn rate x measured seconds / SLO period (docs/reports.md)."""
    slo = j.experiment.slo
    if not slo or not slo.objective or slo.objective >= 1:
        return None
    rows = [r for r in j.series if r.probe == "traffic"] or list(j.series)
    events = sum(int(r.requests or 0) for r in rows)
    if not events:
        return None
    bad = sum(int(r.errors or 0) for r in rows)
    seconds = float(len({r.t for r in rows}))
    period = float(slo.period or DEFAULT_PERIOD)
    burn = bad / events / (1 - float(slo.objective))
    return Budget(float(slo.objective), period, events, bad, seconds, burn,
                  burn * seconds / period)


# --- the summary table, as text cells (HTML and Markdown lay out the same columns)
SUMMARY_HEADER = ("#", "experiment", "verdict", "score", "checks passed", "time to detect",
                  "time to recover", "error budget used", "duration", "weight")


def seconds_text(value: float | None, approximate: bool = False) -> str:
    """An approximate value comes from whole-second series: say so, to the second."""
    if value is None:
        return "—"
    if approximate:
        return "<1s" if value < 1 else f"≈{value:.0f}s"
    return format_duration(value)


def detect_text(f: Facts, long: bool = False) -> str:
    """Time to detect as people should read it: the alerts that fired (or did not), a check's
    detection, or only errors seen."""
    if f.detect_how in ("alerts", "missed"):
        told = [f"detected by {n} after {format_duration(s)}" if s is not None else
                f"{n} did not fire ({status})" for n, s, status in f.alerts]
        if not long:
            return seconds_text(f.detect) if f.detect is not None else "missed"
        return "; ".join(told)
    if f.detect_how == "engine":
        return seconds_text(f.detect) + (" (a check failed while the faults were on)"
                                         if long else "")
    if f.detect_how == "series":
        seen = seconds_text(f.detect, approximate=True)
        return (f"no traffic or Prometheus check detected it; errors were first seen {seen} "
                "after the first injection (per-second series)" if long
                else f"errors at {seen}")
    if not f.faults:
        return "— (no fault window in the journal to measure from)" if long else "—"
    return "nothing deviated while the faults were on" if long else "—"


def recover_text(f: Facts, long: bool = False) -> str:
    if f.recover is not None:
        return seconds_text(f.recover) + (" after the last revert" if long else "")
    if f.recover_within is not None and f.verdict in SCORED and f.faults:
        return f"not within {format_duration(f.recover_within)}" + (
            " (recover_within failed)" if long else "")
    return "—"


def share_text(fraction: float) -> str:
    """A percentage that stays readable when tiny (error budget shares are): 0.00077%."""
    percent = fraction * 100
    if percent == 0 or percent >= 0.01:
        return f"{percent:.2f}".rstrip("0").rstrip(".") + "%"
    from decimal import Decimal

    return f"{Decimal(f'{percent:.2g}'):f}%"


def budget_text(b: Budget | None) -> str:
    """Burn rate and budget time, which people can weigh (`burn 0.11× · 5.5 ms of 216 min`),
    rather than a share of the period (`0.000043% of 30d`). The budget of a period is the
    time it may be all bad: period × (1 - objective); the run used consumed × that."""
    if b is None:
        return "—"
    total = b.period * (1 - b.objective)
    return f"burn {b.burn:.2g}× · {budget_time(b.consumed * total)} of {budget_time(total)}"


def budget_time(seconds: float) -> str:
    """Budget time to two or three significant digits: 216 min, 1.5 s, 5.5 ms."""
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    if seconds >= 1:
        return f"{seconds:.2g} s"
    if seconds == 0:
        return "0 s"
    return f"{seconds * 1000:.2g} ms"


def period_text(b: Budget) -> str:
    return (f"{b.period / 86400:g}d" if b.period >= 86400 else
            f"{b.period / 3600:g}h" if b.period >= 3600 else format_duration(b.period))


def summary_cells(index: int, f: Facts) -> tuple[str, ...]:
    if f.verdict == "skipped":
        return (str(index), f.title, "skipped", "—", "—", "—", "—", "—", "—", str(f.weight))
    return (str(index), f.title, f.verdict, "—" if f.score is None else f"{f.score * 100:.0f}",
            f"{f.passed}/{f.evaluated}", detect_text(f), recover_text(f), budget_text(f.budget), format_duration(f.duration),
            str(f.weight))


def about(collection: Collection) -> list[str]:
    """The report's subtitle, in parts: game day id, date, owners, exit code, early stop."""
    gd: Mapping[str, Any] = collection.gameday or {}
    parts = []
    if gd.get("gameday"):
        parts.append(f"game day {gd['gameday']}")
    if gd.get("started"):
        parts.append(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(gd["started"]))))
    if collection.owners:
        parts.append("owners: " + ", ".join(collection.owners))
    if gd.get("exit_code") is not None:
        parts.append(f"exit code {gd['exit_code']}")
    if gd.get("stopped"):
        parts.append(f"stopped early: {gd['stopped']}")
    return parts


def events_text(verdict: CheckVerdict) -> str:
    """A verdict's event count for a table cell; blank when the journal has none."""
    return "" if verdict.events is None else str(verdict.events)


def score_text(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.0f}/100"


# --- what the charts draw besides the series: the SLO lines, the seconds without successes
_LATENCY_CHECK = re.compile(r"latency\.(?:p\d+(?:\.\d+)?|max|mean)\s*(?:<=?|>=?)")
_RATIO_CHECK = re.compile(r"^\s*(?:[A-Za-z_][\w-]*|availability)\s*(?:>=?|<=?)\s*[\d.]+\s*%")


@dataclass(frozen=True)
class Threshold:
    check: str  # the check as written: `latency.p95 < 350ms`
    value: float  # in the chart's unit: seconds (latency), a fraction (availability)


def thresholds(j: RunRecord) -> tuple[tuple[Threshold, ...], tuple[Threshold, ...]]:
    """(availability, latency): the value each check of the run compares to, once per check
    (a check judged in several phases has one threshold)."""
    availability: dict[str, Threshold] = {}
    latency: dict[str, Threshold] = {}
    for data in j.phases.values():
        for c in data.checks:
            text, value = str(c.check or ""), c.threshold
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if _LATENCY_CHECK.search(text) and "fraction" not in text:
                latency.setdefault(text, Threshold(text, float(value)))
            elif text.strip().startswith("error_rate"):
                availability.setdefault(text, Threshold(text, 1.0 - float(value)))
            elif _RATIO_CHECK.match(text) and 0.0 <= float(value) <= 1.0:
                availability.setdefault(text, Threshold(text, float(value)))
    return tuple(availability.values()), tuple(latency.values())


def no_success(j: RunRecord) -> tuple[Window, ...]:
    """Seconds where requests were sent but none succeeded: latency has no value there (a
    latency of failures would be the time to fail), which the chart says instead of a gap."""
    offset = traffic_offset(j)
    seconds = sorted({float(r.t or 0) + (offset if r.probe == "traffic" else 0.0)
                      for r in j.series if r.requests and r.p50 is None})
    windows: list[Window] = []
    for t in seconds:
        if windows and abs(windows[-1].end - t) < 1e-6:
            windows[-1] = Window(windows[-1].name, windows[-1].start, t + 1.0)
        else:
            windows.append(Window("no successful requests", t, t + 1.0))
    return tuple(windows)
