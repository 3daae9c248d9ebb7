"""Post-mortem drafts (Markdown) for experiments that failed or were aborted.

The facts are filled in from the journal - summary, impact in SLO numbers, a timeline from the
events - and the parts only people can write are left as sections to fill in: root cause, what
went well, poorly and where we got lucky, and action items with owners and due dates. A blank
template nobody fills in is worse than none, so the draft is short and each section says what
belongs in it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chaos.records import CheckVerdict, Event, RunRecord
from chaos.reports import analysis
from chaos.reports.analysis import Facts, events_text
from chaos.units import format_duration


def filename(index: int, f: Facts) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", f.title.lower()).strip("-")[:48].strip("-")
    return f"postmortem-{index:02d}-{slug or 'experiment'}.md"


def draft(f: Facts, journal: RunRecord, *, owners: Sequence[str] = (),
          gameday: Mapping[str, Any] | None = None) -> str:
    started = journal.started
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(started))) if started else "?"
    context = f" during game day \"{gameday.get('title')}\" ({gameday.get('gameday')})" \
        if gameday else ""
    faults = ", ".join(f"{i.fault} ({i.type}) on {i.target}"
                       for i in journal.injections) or "nothing"
    ctk: Mapping[str, Any] = journal.chaostoolkit or {}
    if ctk.get("method"):  # a Chaos Toolkit run: its method's actions did the injecting
        faults += "; Chaos Toolkit method: " + ", ".join(
            f"{a['activity']} ({a['type']}, {a['status']})" for a in ctk["method"])
    lines = [
        f"# Post-mortem (draft): {f.title}", "",
        f"*Status: draft generated from journal `{f.run}` — edit freely.*", "",
        "## Summary", "",
        f"On {when}{context}, the experiment `{f.source or f.label}` ended **{f.verdict}** "
        f"(exit {f.exit_code}): {f.reason or 'no reason recorded'}.", "",
        f"Injected: {faults}.", "",
        "## Impact", "",
        *_impact(f), "",
        "## Timeline", "",
        "| t (s) | time (UTC) | what happened |", "|---:|---|---|",
        *_timeline(journal), "",
        "## Root cause", "",
        "_Why did the system deviate? Name the mechanism, not the person. Link evidence._", "",
        "## What went well", "", "- _…_", "",
        "## What went poorly", "", "- _…_", "",
        "## Where we got lucky", "", "- _…_", "",
        "## Action items", "",
        "| action | owner | due date | ticket |", "|---|---|---|---|",
    ]
    for owner in owners or ("_owner_",):
        lines.append(f"| _what will prevent or soften this_ | {_cell(owner)} | _YYYY-MM-DD_ | |")
    lines += ["", "## Supporting data", "",
              f"- journal: `{f.run}` (`chaos report JOURNAL --format html` renders it)",
              f"- checks passed: {f.passed}/{f.evaluated}"]
    return "\n".join(lines) + "\n"


def _impact(f: Facts) -> list[str]:
    lines = []
    if f.failing:
        lines += ["| phase | check | status | measured | events |", "|---|---|---|---|---|"]
        lines += [f"| {phase} | `{_cell(c.check)}` | {c.status} | "
                  f"{_cell(c.measured or '—')} | {events_text(c)} |"
                  for phase, c in f.failing]
        lines.append("")
    worst = [(line.name, min(v for _, v in line.points)) for line in f.availability
             if line.points]
    for name, value in worst:
        lines.append(f"- lowest availability of {name} in one second: {value * 100:.1f}%")
    slowest = [(line.name, max(v for _, v in line.points)) for line in f.latency
               if line.points and not line.name.endswith("p50")]
    for name, value in slowest:
        lines.append(f"- worst {name} latency in one second: {format_duration(value)}")
    if f.budget is not None:
        b = f.budget
        lines.append(f"- error budget used: {analysis.budget_text(b)} ({b.bad} bad of {b.events} "
                     f"events, burn rate {b.burn:.2f} against a {b.objective * 100:g}% "
                     f"objective)")
    lines += [f"- time to detect: {analysis.detect_text(f, long=True)}",
              f"- time to recover: {analysis.recover_text(f, long=True)}"]
    for t, check in f.breaches:
        lines.append(f"- guardrail `{check}` breached at {t:.1f}s: everything was reverted")
    return lines


def _cell(value: object) -> str:
    """A table cell: a `|` (a Chaos Toolkit probe name may hold one) would split the row."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _timeline(journal: RunRecord) -> list[str]:
    rows = []
    for event in journal.events:
        text = describe(event)
        if text is None:
            continue
        ts = time.strftime("%H:%M:%S", time.gmtime(float(event.ts))) if event.ts else ""
        rows.append(f"| {float(event.t or 0.0):.1f} | {ts} | {text} |")
    return rows


def describe(event: Event) -> str | None:
    """One event as a timeline line; None for events a post-mortem does not need. What each
    event carries is its own (the catalogue in chaos.runner.events), read by name here."""
    name, e = event.name, event.data
    if name == "check.evaluated":
        v = CheckVerdict.from_json(e["verdict"], "verdict")
        if v.status == "PASS":
            return None
        return f"{e['phase']} check `{v.check}` {v.status}: measured {v.measured or 'n/a'}"
    texts: dict[str, Callable[[], str]] = {
        "run.started": lambda: "run started",
        "service.started": lambda: f"service {e['service']} started (pid {e.get('pid')})",
        "service.ready": lambda: f"service {e['service']} ready",
        "service.stopped": lambda: f"service {e['service']} stopped",
        "phase.started": lambda: f"{e['phase']} phase started",
        "phase.finished": lambda: f"{e['phase']} phase "
                                  f"{'passed' if e.get('passed') else 'failed'}",
        "fault.injected": lambda: f"fault {e['fault']} injected into {e['target']}",
        "fault.failed": lambda: f"fault {e['fault']} failed: {e.get('error')}",
        "fault.reverted": lambda: f"fault {e['fault']} reverted ({e.get('outcome')})",
        "fault.revert_failed": lambda: f"revert of {e['fault']} FAILED: {e.get('error')}",
        "guardrail.breached": lambda: f"guardrail `{e['check']}` breached: reverting",
        "run.interrupted": lambda: f"interrupted by {e.get('signal')}",
        "run.detected": lambda: f"deviation detected by `{e.get('check')}`",
        "run.recovered": lambda: f"recovered {e.get('after')}s after the last revert",
        "activity.started": lambda: f"{e.get('phase')} {e.get('type')} `{e.get('activity')}` "
                                    "started" + (" in the background"
                                                 if e.get("background") else ""),
        "activity.finished": lambda: f"{e.get('phase')} {e.get('type')} `{e.get('activity')}` "
                                     f"{e.get('status')}" + (f": {e['error']}"
                                                             if e.get("error") else ""),
        "run.finished": lambda: f"run finished: {e.get('verdict')} (exit {e.get('exit_code')})",
    }
    text = texts.get(str(name))
    return text().replace("|", "\\|") if text else None
