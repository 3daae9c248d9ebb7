"""Chaos Toolkit probe runs and activity runs, said the way our reports say things.

A hypothesis probe becomes a check verdict (as chaos.slo.checks.Verdict.as_dict() has it), so
the terminal summary and JUnit show which probe held, which was out of tolerance (FAIL) and
which could not run (ERROR), with what it returned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from chaos.errors import truncate
from chaos.records import Status
from chaos.records.journal import CHECK_KEYS, CheckVerdict


def tolerance_text(tolerance: Any) -> str:
    if isinstance(tolerance, Mapping):
        kind = tolerance.get("type")
        detail = {"regex": tolerance.get("pattern"), "jsonpath": tolerance.get("path"),
                  "range": tolerance.get("range"), "probe": tolerance.get("name")}.get(str(kind))
        target = f" of {tolerance['target']}" if tolerance.get("target") else ""
        return f"{kind} {detail!r}{target}" if detail is not None else str(kind)
    if isinstance(tolerance, list):
        return f"in {tolerance!r}"
    return f"== {tolerance!r}"


def output_text(output: Any) -> str:
    if isinstance(output, Mapping) and "status" in output:
        return f"status {output['status']}"
    return truncate(repr(output), 60)


CHAOSLIB_ERROR = re.compile(r"^chaoslib\.exceptions\.\w+: ")
# requests' "HTTPConnectionPool(host=..., port=...): Max retries exceeded ... (Caused by
# NewConnectionError('...: Failed to establish a new connection: [Errno 111] Connection
# refused'))": the errno text is what a person needs
ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def activity_error(run: Mapping[str, Any]) -> str:
    """The last line of a run's exception (chaoslib keeps the formatted traceback lines),
    without chaoslib's exception class, and a connection error said in a few words."""
    lines = [line.strip() for line in run.get("exception") or [] if str(line).strip()]
    if not lines:
        return ""
    text = CHAOSLIB_ERROR.sub("", lines[-1])
    if "Max retries exceeded" in text and (errno := ERRNO.search(text)):
        text = f"{text.partition(': HTTPConnectionPool')[0]}: {errno[1].strip().lower()}"
    return truncate(text, 200)


def probe_verdicts(state: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Each probe run of a steady-state hypothesis as a check verdict (the journal's JSON,
    which the check.evaluated event carries)."""
    return [probe_verdict(run).to_json() for run in (state or {}).get("probes", [])]


def probe_verdict(run: Mapping[str, Any]) -> CheckVerdict:
    activity = run.get("activity", {})
    met = run.get("tolerance_met")
    failed = run.get("status") != "succeeded"
    reason = activity_error(run) if failed else (
        "" if met else f"returned {output_text(run.get('output'))}, not within the tolerance")
    return CheckVerdict(
        check=f"{activity.get('name')} {tolerance_text(activity.get('tolerance'))}",
        status=(Status.ERROR if failed else Status.PASS if met else Status.FAIL).value, value=None,
        measured="error" if failed else output_text(run.get("output")), threshold=None,
        window=run.get("duration"), events=1,
        source=f"chaostoolkit:{activity.get('provider', {}).get('type', 'probe')}",
        reason=reason, layout=CHECK_KEYS)


def settled(run: dict[str, Any], now: datetime) -> dict[str, Any]:
    """An activity run the run ended without waiting for, recorded as failed (it never
    finished while the run lasted)."""
    if "status" not in run:
        run["status"] = "failed"
        run["exception"] = ["interrupted: the run ended without waiting for this activity\n"]
        run["end"] = now.isoformat()
        run["duration"] = (now - datetime.fromisoformat(run["start"])).total_seconds()
    return run


def journal_status(state: dict[str, Any]) -> str:
    """Chaos Toolkit's: `failed` when a probe raised, `completed` when one was out of
    tolerance."""
    return "failed" if any(p.get("status") != "succeeded" for p in state.get("probes", [])) \
        else "completed"


def unmet_because(state: dict[str, Any]) -> str:
    """Why a steady-state hypothesis was not met: its last probe, failed or out of tolerance."""
    probes = state.get("probes") or []
    if not probes:
        return "no probe ran"
    last = probes[-1]
    name = last["activity"].get("name")
    if last.get("status") != "succeeded":
        return f"probe {name} failed: {activity_error(last)}"
    return f"probe {name} returned {truncate(repr(last.get('output')), 120)}, not within its " \
           f"tolerance"
