"""OpenTelemetry traces of a run: `chaos run --traces` exports them over OTLP/HTTP.

An event subscriber: a span per run, a child span per phase (before, during, after) and per
injection (inject -> revert, a child of the during phase), span events for every check verdict,
guardrail breach and alert; the run span ends with the verdict (an ERROR status when the run did
not hold). Where the spans go is set by the standard variables (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, _HEADERS, _TIMEOUT; OTEL_SERVICE_NAME, default `chaos`).

Spans are batched and exported from the SDK's own thread, so a slow or hung collector never
blocks the engine or a revert; at the end the run waits a bounded time for the last export.
opentelemetry is imported here only, when traces are asked for.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from chaos.errors import UsageError
from chaos.runner.events import Event


class TracesUnavailable(UsageError):
    """The opentelemetry packages are not installed (exit 2)."""


def _ns(ts: float) -> int:
    return int(ts * 1_000_000_000)


class RunTraces:
    def __init__(self) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise TracesUnavailable("--traces needs OpenTelemetry: pip install 'chaos[otel]' "
                                    "(opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http)"
                                    ) from exc
        self._trace = trace
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "chaos"}
        # no shutdown at exit: a hung collector would hold the process; `close` bounds the wait
        self.provider = TracerProvider(resource=Resource.create(attributes),
                                       shutdown_on_exit=False)
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(),
                                                            schedule_delay_millis=500))
        self.tracer = self.provider.get_tracer("chaos")
        self._run: Any = None
        self._phases: dict[str, Any] = {}
        self._faults: dict[str, Any] = {}

    def _context(self, span: Any) -> Any:
        return self._trace.set_span_in_context(span) if span is not None else None

    def _current(self) -> Any:
        open_phases = [s for s in self._phases.values() if s.is_recording()]
        return open_phases[-1] if open_phases else self._run

    def __call__(self, event: Event) -> None:
        d, at = event.data, _ns(event.ts)
        name = event.name
        if name == "run.started":
            self._run = self.tracer.start_span(f"chaos run: {d.get('title')}", start_time=at,
                                               attributes={"chaos.run": str(d.get("run")),
                                                           "chaos.source": str(d.get("source")),
                                                           "chaos.seed": int(d.get("seed") or 0)})
        elif self._run is None:
            return
        elif name == "phase.started":
            self._phases[d["phase"]] = self.tracer.start_span(
                f"phase {d['phase']}", context=self._context(self._run), start_time=at,
                attributes={"chaos.phase": d["phase"]})
        elif name == "phase.finished":
            span = self._phases.get(d["phase"])
            if span is None:  # `detection` only finishes: an instant span
                span = self._phases[d["phase"]] = self.tracer.start_span(
                    f"phase {d['phase']}", context=self._context(self._run), start_time=at,
                    attributes={"chaos.phase": d["phase"]})
            span.set_attribute("chaos.passed", bool(d.get("passed")))
            span.end(end_time=at)
        elif name == "fault.injected":
            parent = self._phases.get("during") or self._run
            self._faults[d["injection"]] = self.tracer.start_span(
                f"fault {d['fault']}", context=self._context(parent), start_time=at,
                attributes={"chaos.fault": d["fault"], "chaos.fault.type": d["type"],
                            "chaos.target": d["target"], "chaos.injection": d["injection"]})
        elif name in ("fault.reverted", "fault.revert_failed"):
            span = self._faults.pop(d["injection"], None)
            if span is not None:
                span.set_attribute("chaos.revert.outcome", d.get("outcome", "failed"))
                if name == "fault.revert_failed":
                    span.set_status(self._trace.Status(self._trace.StatusCode.ERROR,
                                                       str(d.get("error"))))
                span.end(end_time=at)
        elif name == "check.evaluated":
            v = d["verdict"]
            target = self._phases.get(d["phase"]) or self._current()
            attributes = {"chaos.check": str(v["check"]), "chaos.status": str(v["status"]),
                          "chaos.phase": d["phase"]}
            if isinstance(v.get("value"), int | float):
                attributes["chaos.value"] = float(v["value"])
            target.add_event("check.evaluated", attributes, timestamp=at)
        elif name in ("guardrail.breached", "alert.observed", "run.detected", "run.recovered",
                      "run.interrupted"):
            attributes = {f"chaos.{k}": str(v) for k, v in d.items()
                          if isinstance(v, str | int | float) and not isinstance(v, bool)}
            self._current().add_event(name, attributes, timestamp=at)
        elif name == "run.finished":
            for span in [*self._faults.values(), *self._phases.values()]:
                if span.is_recording():
                    span.end(end_time=at)
            self._run.set_attribute("chaos.verdict", str(d.get("verdict")))
            self._run.set_attribute("chaos.exit_code", int(d.get("exit_code") or 0))
            if d.get("verdict") != "held":
                self._run.set_status(self._trace.Status(self._trace.StatusCode.ERROR,
                                                        str(d.get("reason") or "")))
            self._run.end(end_time=at)
            self._run, self._phases, self._faults = None, {}, {}

    def close(self, wait: float = 5.0) -> None:
        """Export what is left, waiting at most `wait` seconds (a hung collector is left)."""
        done = threading.Thread(target=self.provider.shutdown, name="otel-shutdown",
                                daemon=True)
        done.start()
        done.join(wait)
