"""A small OTLP/HTTP trace receiver: takes `POST /v1/traces` (protobuf), decodes it with
opentelemetry-proto and keeps every span, as a collector would receive them."""

from __future__ import annotations

import http.server
import threading
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass
class Span:
    name: str
    span_id: bytes
    parent: bytes
    trace_id: bytes
    start: int  # ns
    end: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status: int
    service: str = ""
    children: list[Span] = field(default_factory=list)


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


class _Handler(http.server.BaseHTTPRequestHandler):
    server: OtlpReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self.server.lock:
            self.server.paths.append((self.path, self.headers.get("Content-Type", "")))
            for resource in request.resource_spans:
                service = next((_value(a.value) for a in resource.resource.attributes
                                if a.key == "service.name"), "")
                for scope in resource.scope_spans:
                    for s in scope.spans:
                        self.server.spans.append(Span(
                            s.name, s.span_id, s.parent_span_id, s.trace_id,
                            s.start_time_unix_nano, s.end_time_unix_nano,
                            {a.key: _value(a.value) for a in s.attributes},
                            [(e.name, {a.key: _value(a.value) for a in e.attributes})
                             for e in s.events], s.status.code, service))
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class OtlpReceiver(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.spans: list[Span] = []
        self.paths: list[tuple[str, str]] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def tree(self) -> list[Span]:
        """Root spans, each with its children linked."""
        with self.lock:
            spans = list(self.spans)
        by_id = {s.span_id: s for s in spans}
        for s in spans:
            s.children = []
        roots = []
        for s in spans:
            if s.parent and s.parent in by_id:
                by_id[s.parent].children.append(s)
            else:
                roots.append(s)
        return roots
