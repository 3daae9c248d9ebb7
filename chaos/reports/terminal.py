"""The terminal summary of a run, rendered from its journal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def summary(journal: Mapping[str, Any], journal_path: str | None = None) -> str:
    exp = journal["experiment"]
    lines = [f"── {exp['title']}  ({exp['source']})"]
    injections = journal.get("injections", [])
    if injections:
        lines.append("  injected:")
        for inj in injections:
            when = inj.get("injected_at")
            until = inj.get("reverted_at")
            timing = ""
            if when is not None:
                timing = f" at {when:.1f}s" + (f", reverted at {until:.1f}s" if until and
                                                 until > 0 else "")
            lines.append(f"    {inj['fault']} ({inj['type']}) on {inj['target']}{timing}: "
                         f"{inj['outcome']}" + (f" - {inj['error']}" if inj.get("error") else ""))
    elif exp.get("faults"):
        lines.append("  injected: nothing")
    for phase in ("before", "during", "after"):
        checks = journal.get("phases", {}).get(phase, {}).get("checks", [])
        if not checks:
            continue
        lines.append(f"  {phase}:")
        for c in checks:
            measured = c.get("measured") or "n/a"
            reason = f"  ({c['reason']})" if c.get("reason") and c["status"] != "PASS" else ""
            lines.append(f"    [{MARKS.get(c['status'], c['status'])}] {c['check']:<32} "
                         f"measured {measured}, {c.get('events', 0)} events{reason}")
    recovery = journal.get("recovery", {}).get("seconds")
    if recovery is not None:
        lines.append(f"  recovered {format_duration(recovery)} after the last revert")
    verdict = VERDICT_LINES.get(journal["verdict"], journal["verdict"].upper())
    if journal["verdict"] == "held" and not exp.get("checks"):
        verdict = "DONE (no hypothesis; every fault was reverted)"
    lines.append(f"  verdict: {verdict} (exit {journal['exit_code']})")
    if journal["verdict"] != "held" and journal.get("reason"):
        lines.append(f"  why: {journal['reason']}")
    if journal_path:
        lines.append(f"  journal: {journal_path}")
    return "\n".join(lines)
