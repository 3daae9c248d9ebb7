"""An exporter whose latency histograms hold exactly what the test says, for checking how chaos
reads Prometheus buckets: it serves /metrics (zeros at first), and on GET /observe records the
`--observe SECONDSxCOUNT` observations, once, into two histograms of the same truth:
`demo_default_seconds` (prometheus_client's default buckets) and `demo_layout_seconds` (a
layout with neighbouring bounds that round alike: 0.2/0.25, 0.3/0.35, 0.75/0.8).

    python -m tests.support.histogram_exporter --observe 0.04x300 --observe 0.3x100
"""

from __future__ import annotations

import argparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest

DEFAULT = tuple(b for b in Histogram.DEFAULT_BUCKETS if b != float("inf"))
LAYOUT = (0.05, 0.1, 0.2, 0.25, 0.3, 0.35, 0.5, 0.75, 0.8, 1.0, 2.5)
REGISTRY = CollectorRegistry()
HISTOGRAMS = (
    Histogram("demo_default_seconds", "latency, default buckets", registry=REGISTRY),
    Histogram("demo_layout_seconds", "latency, close buckets", buckets=LAYOUT,
              registry=REGISTRY),
)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    observations: list[tuple[float, int]] = []

    def do_GET(self) -> None:
        if self.path == "/observe":
            for seconds, count in Handler.observations:
                for histogram in HISTOGRAMS:
                    for _ in range(count):
                        histogram.observe(seconds)
            Handler.observations = []  # once
            body = b"observed"
            self.send_response(200)
        else:
            body = generate_latest(REGISTRY)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--observe", action="append", default=[])
    args = parser.parse_args()
    Handler.observations = [(float(s), int(n)) for s, n in
                            (o.split("x") for o in args.observe)]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
