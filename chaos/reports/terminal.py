"""The terminal summary of a run, rendered from its journal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chaos.records import Capacity, CheckVerdict, Injection, RunRecord, SeriesPoint
from chaos.units import format_duration

MARKS = {"PASS": "ok  ", "FAIL": "FAIL", "NO_DATA": "n/a ", "INVALID": "INV ", "ERROR": "ERR "}
VERDICT_LINES = {
    "held": "HYPOTHESIS HELD",
    "deviated": "HYPOTHESIS FAILED",
    "steady-state-not-met": "STEADY STATE NOT MET (nothing was injected)",
    "aborted": "ABORTED (everything was reverted)",
    "revert-failed": "REVERT FAILED (something may still be injected)",
    "interrupted": "INTERRUPTED (everything was reverted)",
    "error": "ERROR",
}


def summary(journal: RunRecord | Mapping[str, Any], journal_path: str | None = None) -> str:
    record = RunRecord.of(journal)
    exp = record.experiment
    lines = [f"── {exp.title}  ({exp.source})"]
    if record.injections:
        lines.append("  injected:")
        lines.extend(_injection_line(inj) for inj in record.injections)
    elif exp.faults:
        lines.append("  injected: nothing")
    for phase in ("before", "during", "after", "detection"):
        lines.extend(_phase_lines(record, phase))
    traffic = [row for row in record.series if row.probe == "traffic"]
    if traffic:
        lines.extend(traffic_table(traffic))
    if record.capacity:
        lines.extend("  " + line for line in capacity_lines(record.capacity))
    detected = record.detection.seconds if record.detection else None
    if detected is not None:
        lines.append(f"  detected {format_duration(detected)} after the first injection")
    recovery = record.recovery.seconds if record.recovery else None
    if recovery is not None:
        lines.append(f"  recovered {format_duration(recovery)} after the last revert")
    lines.extend(_service_exits(record))
    verdict = VERDICT_LINES.get(str(record.verdict), str(record.verdict).upper())
    if record.verdict == "held" and not exp.checks:
        verdict = "DONE (no hypothesis; every fault was reverted)"
    lines.append(f"  verdict: {verdict} (exit {record.exit_code})")
    if record.verdict != "held" and record.reason:
        lines.append(f"  why: {record.reason}")
    if journal_path:
        lines.append(f"  journal: {journal_path}")
    return "\n".join(lines)


def _service_exits(record: RunRecord) -> list[str]:
    """Services that exited on their own: often the real reason behind the verdict."""
    return [f"  service {e.get('service')} exited (code {e.get('returncode')}) "
            f"{'while the run held it' if e.get('ready') else 'before it was ready'}: "
            f"see {e.get('log')}" for e in record.events if e.name == "service.exited"]


def _injection_line(inj: Injection) -> str:
    when, until = inj.injected_at, inj.reverted_at
    timing = ""
    if when is not None:
        timing = f" at {when:.1f}s" + (f", reverted at {until:.1f}s" if until and
                                         until > 0 else "")
        if inj.reverted_by not in (None, "", "runner"):
            timing += f" by {inj.reverted_by}"
    return (f"    {inj.fault} ({inj.type}) on {inj.target}{timing}: {inj.outcome}"
            + (f" - {inj.error}" if inj.error else ""))


def _phase_lines(record: RunRecord, phase: str) -> list[str]:
    checks = record.phase(phase).checks
    guardrails = record.phase(phase).guardrails if phase == "during" else ()
    if not checks and not (phase == "during" and phase in record.phases):
        return []
    lines = [f"  {phase}:"]
    if phase == "during":  # always shown: how close each guardrail came to aborting
        lines.extend(guardrail_lines(guardrails))
        if not checks and not guardrails:
            lines.append("    no checks and no guardrails while the faults were held")
    for c in checks:
        measured = c.measured or "n/a"
        reason = f"  ({c.reason})" if c.reason and c.status != "PASS" else ""
        source = c.source or ""
        where = (f" over {format_duration(c.window)} of {source.split(':')[0]}"
                 if source.startswith(("traffic", "prometheus")) and c.window else "")
        events = c.events or 0
        lines.append(f"    [{MARKS.get(str(c.status), str(c.status))}] {c.check:<32} "
                     f"measured {measured}, {events} event{'' if events == 1 else 's'}"
                     f"{where}{reason}")
    lines.extend(stage_lines(record.phase(phase).stages))
    return lines


def capacity_line(capacity: Capacity) -> str:
    """`capacity: sustainable 170 req/s; broke at 230 req/s (latency.p99 > 250ms)`."""
    held = capacity.sustainable_rate
    text = "capacity: " + (f"sustainable {held:,.0f} req/s" if held is not None
                           else "not even the first step held")
    if capacity.broken_at is not None:
        text += f"; broke at {capacity.broken_at:,.0f} req/s ({capacity.broken_by})"
    elif capacity.invalid:
        text += f"; search undecided: {capacity.invalid}"
    else:
        text += " (held up to max)"
    return text


def capacity_lines(capacity: Capacity) -> list[str]:
    """The search; with a second one under fault, both and what the faults cost:
    `capacity: sustainable 1,240 req/s -> 760 req/s with `slow-db` (-39%)`."""
    faulted = capacity.under_fault
    if not faulted:
        return [capacity_line(capacity)]
    names = fault_names(faulted, "`{}`") or "the faults"
    lines = [capacity_line(capacity).replace("capacity:", "capacity without faults:", 1),
             capacity_line(faulted).replace("capacity:", f"capacity with {names}:", 1)]
    before, after = capacity.sustainable_rate, faulted.sustainable_rate
    lost = capacity.lost
    if before is not None and after is not None and lost is not None:
        change = f"{-lost:+.0%}".replace("-", "\u2212")  # a minus sign, not a hyphen
        lines.insert(0, f"capacity: sustainable {before:,.0f} req/s \u2192 {after:,.0f} req/s "
                        f"with {names} ({change})")
    return lines


def fault_names(search: Capacity, shape: str = "{}") -> str:
    """The faults held during a search under fault, each in `shape`, comma-separated."""
    return ", ".join(shape.format(name) for name in search.faults)


def stage_lines(stages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The window of a phase over several stages of a load profile, stage by stage."""
    lines = []
    for s in stages:
        p99 = "n/a" if s.get("p99") is None else format_duration(s["p99"])
        errors = s.get("errors", 0)
        share = f" ({errors / s['requests']:.1%})" if s.get("requests") else ""
        lines.append(f"      {s['stage']}: {s.get('requests', 0):,} requests, "
                     f"{errors:,} errors{share}, p99 {p99}")
    return lines


def guardrail_lines(guardrails: Sequence[CheckVerdict]) -> list[str]:
    """A breach as what happened (`guardrail breached: home < 50% (measured 20%)`); a guardrail
    that held with the value that came closest to breaching it."""
    lines = []
    for g in guardrails:
        events = g.events or 0
        if g.breached:
            lines.append(f"    [{MARKS['FAIL']}] guardrail breached: {g.check} "
                         f"(measured {g.measured or 'n/a'}, {events} "
                         f"event{'' if events == 1 else 's'})")
        elif g.measured is None:
            lines.append(f"    [{MARKS['NO_DATA']}] guardrail {g.check:<22} never measured"
                         + (f" ({g.reason})" if g.reason else ""))
        else:
            lines.append(f"    [{MARKS['PASS']}] guardrail {g.check:<22} held; closest: "
                         f"measured {g.measured} ({events} event{'' if events == 1 else 's'})")
    return lines


def traffic_table(rows: Sequence[SeriesPoint], width: int = 12) -> list[str]:
    """Per-second traffic, compacted to at most `width` rows (each row sums or takes the worst
    of the seconds it stands for: percentiles cannot be averaged)."""
    step = max(1, -(-len(rows) // width))
    lines = ["  traffic:    t   req/s  errors     p50     p95     p99  lag p99"]
    for i in range(0, len(rows), step):
        group = rows[i:i + step]

        p50, p95, p99, lag = (_worst(group, key) for key in ("p50", "p95", "p99", "lag_p99"))
        lines.append(f"    {group[0].t:>9}s "
                     f"{sum(r.requests or 0 for r in group) / len(group):7.0f} "
                     f"{sum(r.errors or 0 for r in group):7d} {p50:>7} {p95:>7} {p99:>7} {lag:>8}")
    return lines


def _worst(rows: Sequence[SeriesPoint], key: str) -> str:
    values = [v for r in rows if (v := r.stat(key)) is not None]
    return format_duration(max(values)) if values else "-"
