"""A loopback HTTP service instrumented with prometheus_client, for the Prometheus tests: it
answers / (every `--error-every`th request with a 500, every `--slow-every`th after --slow
seconds), counts requests by code and observes latencies in a histogram, serves /metrics, and
prints its own totals on SIGTERM (`total good`), the ground truth Prometheus is checked against.

    python -m tests.integration.metrics_http_server --port N
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

REGISTRY = CollectorRegistry()
REQUESTS = Counter("demo_requests", "requests by code", ["code"], registry=REGISTRY)
LATENCY = Histogram("demo_latency_seconds", "request latency", registry=REGISTRY,
                    buckets=(0.01, 0.05, 0.1, 0.25, 0.35, 0.5, 1.0))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0
    good = 0
    lock = threading.Lock()
    args: argparse.Namespace

    def do_GET(self) -> None:
        if self.path == "/metrics":
            body = generate_latest(REGISTRY)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        else:
            started = time.monotonic()
            with Handler.lock:
                i = Handler.count
                Handler.count += 1
            if self.args.slow_every and i % self.args.slow_every == 1:
                time.sleep(self.args.slow)
            code = 500 if self.args.error_every and i % self.args.error_every == 0 else 200
            with Handler.lock:
                Handler.good += code == 200
            REQUESTS.labels(str(code)).inc()
            LATENCY.observe(time.monotonic() - started)
            body = b"ok"
            self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--error-every", type=int, default=0)
    parser.add_argument("--slow-every", type=int, default=0)
    parser.add_argument("--slow", type=float, default=0.4)
    Handler.args = parser.parse_args()
    for code in ("200", "500"):  # zero from the first scrape, so increase() sees every request
        REQUESTS.labels(code)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)

    def stop(*_: object) -> None:
        print(Handler.count, Handler.good, flush=True)
        sys.stdout.flush()
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
