"""The journal: one JSON document per run, built from events, written atomically.

Its schema is versioned and documented in docs/journal.md. Reports (terminal, JUnit, and later
Markdown/HTML) are rendered from it, never from the engine's memory, so `chaos report` can render
an old run exactly as it was shown.
"""

from __future__ import annotations

import getpass
import math
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaos import __version__
from chaos.model.experiment import Experiment, thaw
from chaos.model.redaction import NOTHING, Redactor
from chaos.records import SCHEMA as SCHEMA
from chaos.records import Detection, ExperimentSummary, Injection, Phase, Recovery, RunRecord
from chaos.records import Event as EventRecord
from chaos.records import Capacity, FineSeries, SeriesPoint, Tool
from chaos.records.journal import FINE_SECONDS, FINE_STEP
# the journal's files belong to chaos.records; re-exported for the runner's callers
from chaos.records.files import load as load, strict as strict, write as write
from chaos.records.layout import keys_of
from chaos.runner.events import Event


class Recorder:
    """Subscribes to the event bus and keeps what the journal needs."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def series(self) -> list[dict[str, Any]]:
        """Per-second, per-probe: requests, errors, latency percentiles of the successes; and
        per second of traffic (`probe: traffic`): requests, errors, p50/p95/p99 of every
        request's latency and the generator's p99 lag (merged histograms, never averaged)."""
        return self._probe_rows(1) + self._traffic_rows("traffic.second")

    def fine_series(self) -> list[dict[str, Any]]:
        """The same per tick of FINE_STEP seconds (`t`: the tick's start), for a short run."""
        return self._probe_rows(round(1 / FINE_STEP)) + self._traffic_rows("traffic.tick")

    def _traffic_rows(self, name: str) -> list[dict[str, Any]]:
        return [{"probe": "traffic", **e.data} for e in self.events if e.name == name]

    def _probe_rows(self, per_second: int) -> list[dict[str, Any]]:
        buckets: dict[tuple[int, str], list[Event]] = {}
        for e in self.events:
            if e.name == "probe.sampled":  # `at` has 4 decimals: 4.3 * 10 is 42.99999...
                at = int(round(e.data["at"] * per_second, 6))
                buckets.setdefault((at, e.data["probe"]), []).append(e)
        rows = []
        for (at, probe), samples in sorted(buckets.items()):
            latencies = sorted(s.data["latency"] for s in samples if s.data["ok"])
            rows.append({
                "t": at if per_second == 1 else round(at / per_second, 3), "probe": probe,
                "requests": len(samples), "errors": sum(not s.data["ok"] for s in samples),
                "p50": _pct(latencies, 50), "p95": _pct(latencies, 95), "max": _pct(latencies, 100),
            })
        return rows


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[max(math.ceil(q / 100 * len(values)), 1) - 1]


def masked(document: dict[str, Any], variables: Mapping[str, Any]) -> dict[str, Any]:
    """The journal with secret variables' values masked wherever they were substituted (a
    service's command line in the summary and in its `service.started` event, a fault's
    parameters, a target's label): chaos.model.redaction, the rule every record follows."""
    redactor = Redactor.of(variables)
    return redactor.data(document) if redactor else document


def experiment_summary(experiment: Experiment) -> dict[str, Any]:
    summary = _summary(experiment)
    summary["variables"] = NOTHING.variables(summary["variables"])
    return summary


def _summary(experiment: Experiment) -> dict[str, Any]:
    return {
        "title": experiment.title, "source": experiment.source,
        "sha256": experiment.source_hash, "description": experiment.description,
        "tags": list(experiment.tags), "variables": thaw(experiment.variables),
        "services": [{"name": s.name, "run": list(s.run)} for s in experiment.services],
        "faults": [{"name": f.name, "type": f.type, "target": f.target.describe(),
                    "with": thaw(f.params), "start": f.start, "duration": f.duration}
                   for f in experiment.faults],
        "checks": [c.text for c in experiment.hypothesis.checks] if experiment.hypothesis else [],
        "slo": ({"objective": experiment.hypothesis.slo.objective,
                 "period": experiment.hypothesis.slo.period}
                if experiment.hypothesis and experiment.hypothesis.slo else None),
    }


def build(experiment: Experiment, recorder: Recorder, result: Any,
          started: float, finished: float) -> dict[str, Any]:
    return masked(document(experiment_summary(experiment), recorder, result, started, finished,
                           experiment.hypothesis.after.recover_within
                           if experiment.hypothesis else None), experiment.variables)


def document(summary: dict[str, Any], recorder: Recorder, result: Any, started: float,
             finished: float, recover_within: float | None = None) -> dict[str, Any]:
    """The journal from an experiment summary (native, or a Chaos Toolkit one from chaos.ctk)."""
    return record(summary, recorder, result, started, finished, recover_within).to_json()


def record(summary: dict[str, Any], recorder: Recorder, result: Any, started: float,
           finished: float, recover_within: float | None = None) -> RunRecord:
    first = next((e for e in recorder.events if e.name == "run.started"), None)
    fine = _fine(recorder, finished - started)
    return RunRecord(
        run=result.run, tool=Tool("chaos", __version__), host=platform.node(), user=_user(),
        seed=first.data.get("seed") if first else None,
        experiment=ExperimentSummary.from_json(summary, "experiment"),
        started=started, finished=finished, duration=round(finished - started, 3),
        verdict=result.verdict, exit_code=int(result.exit_code), reason=result.reason,
        phases={name: Phase.from_json(phase, f"phases.{name}")
                for name, phase in _phases(recorder.events).items()},
        injections=tuple(Injection.from_json(i.as_dict(), "injections")
                         for i in result.injections),
        recovery=Recovery(result.recovery, recover_within),
        detection=Detection(getattr(result, "detected", None),
                            tuple(e.data for e in recorder.events if e.name == "alert.measured")),
        capacity=_capacity(recorder.events),
        series=tuple(SeriesPoint.from_json(row, "series") for row in recorder.series()),
        fine_series=fine,
        events=tuple(EventRecord(e.name, round(e.t, 4), e.ts, e.data) for e in recorder.events
                     if e.name not in SUMMARISED),
        layout=RUN_LAYOUT if fine is None else FINE_LAYOUT)


def _fine(recorder: Recorder, seconds: float) -> FineSeries | None:
    """A run of at most FINE_SECONDS keeps its ticks; a longer one's would only be merged
    again on a chart, so its journal stays the size it was."""
    rows = recorder.fine_series() if seconds <= FINE_SECONDS else []
    return FineSeries(FINE_STEP, tuple(SeriesPoint.from_json(row, "fine_series")
                                       for row in rows)) if rows else None


# events the journal holds as `series` and `fine_series` rather than one by one
SUMMARISED = ("probe.sampled", "traffic.second", "traffic.tick")
# a run of chaos itself has no `chaostoolkit` section (chaos.ctk adds it to a Chaos Toolkit
# run), and `fine_series` only when it was short (and measured something)
FINE_LAYOUT = tuple(k for k in keys_of(RunRecord) if k != "chaostoolkit")
RUN_LAYOUT = tuple(k for k in FINE_LAYOUT if k != "fine_series")


def _phases(events: list[Event]) -> dict[str, dict[str, Any]]:
    """Each phase's window, verdicts, load stages and guardrails, as the events tell them."""
    phases: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.name == "phase.started":
            phases.setdefault(e.data["phase"], {"started": e.t, "checks": []})
        elif e.name == "phase.finished":
            phases.setdefault(e.data["phase"], {"checks": []}).update(
                finished=e.t, passed=e.data["passed"])
        elif e.name == "check.evaluated":
            phases.setdefault(e.data["phase"], {"checks": []})["checks"].append(e.data["verdict"])
        elif e.name == "traffic.stage":  # a window over several stages of a load profile
            phases.setdefault(e.data["phase"], {"checks": []}).setdefault("stages", []).append(
                {k: v for k, v in e.data.items() if k != "phase"})
        elif e.name == "guardrail.evaluated":
            phases.setdefault("during", {"checks": []}).setdefault("guardrails", []).append(
                {"check": e.data["check"], "breached": e.data["breached"],
                 **({k: v for k, v in e.data["verdict"].items() if k not in ("check", "status")}
                    if e.data["verdict"] else {"measured": None, "value": None, "events": 0,
                                               "reason": "never measured"})})
    return phases


def _capacity(events: list[Event]) -> Capacity | None:
    """The breaking-point search; with `under_fault`, the second search beside it and the
    share of the sustainable rate the faults cost (`lost`: 0.39 for -39%)."""
    found = {e.data.get("search", "baseline"): {k: v for k, v in e.data.items() if k != "search"}
             for e in events if e.name == "capacity.measured"}
    if "baseline" not in found:
        return None
    capacity = found["baseline"]
    faulted = found.get("under_fault")
    if faulted is not None:
        before, after = capacity["sustainable_rate"], faulted["sustainable_rate"]
        lost = (round((before - after) / before, 4)
                if before and after is not None and not faulted["invalid"] else None)
        capacity = {**capacity, "under_fault": faulted, "lost": lost}
    return Capacity.from_json(capacity, "capacity")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def read(path: Path) -> dict[str, Any]:
    """One experiment journal, checked as reports need it; ValueError says what is wrong."""
    return checked(path, load(path))


def checked(path: Path, data: Any) -> dict[str, Any]:
    """A chaos journal, or a ValueError saying what is wrong with the file (a Chaos Toolkit
    journal, a truncated or hand-edited one) instead of a crash in a renderer."""
    RunRecord.from_json(data, str(path))
    return dict(data)


def error_journal(source: str, exit_code: int, reason: str) -> dict[str, Any]:
    """A journal for a file that could not run at all (invalid, refused), so reports and JUnit
    show it as an error rather than a gap."""
    return RunRecord.error(source, exit_code, reason).to_json()
