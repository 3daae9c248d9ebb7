"""How long one /metrics scrape of `chaos run --metrics` takes with many active faults.

In-process: a RunMetrics subscriber fed N `fault.injected` events and a ledger (in a temp dir)
holding N open injections of a runner that is gone (so chaos_faults_left_open reads them all),
then timed scrapes over HTTP from prometheus_client's server, as Prometheus would do. Prints a
Markdown table (issue 17 goal: <= 10 ms with 100 active faults).

    .venv/bin/python benchmarks/metrics_scrape.py [--scrapes 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos.runner.events import Event
from chaos.runner.metrics import MetricsServer, RunMetrics
from chaos.safety.ledger import Ledger


def measure(faults: int, scrapes: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(Path(tmp))
        ledger.start_run("bench", pid=2**22 - 1, pid_create_time=0.0, title="bench")
        metrics = RunMetrics(ledger)
        metrics(Event("run.started", 0.0, time.time(), {"run": "bench", "title": "bench"}))
        for i in range(faults):
            ledger.intent("bench", f"bench.0.{i}", fault="network.latency", target=f"t{i}",
                          revert={}, deadline=time.time() + 3600)
            ledger.applied("bench", f"bench.0.{i}")
            metrics(Event("fault.injected", 1.0, time.time(), {
                "fault": "slow", "type": "network.latency", "injection": f"bench.0.{i}",
                "target": f"pod/t{i}", "duration": 60, "deadline": time.time() + 60}))
        server = MetricsServer(metrics.registry, "127.0.0.1:0")
        times, size = [], 0
        try:
            for _ in range(scrapes):
                started = time.perf_counter()
                with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as r:
                    size = len(r.read())
                times.append(time.perf_counter() - started)
        finally:
            server.close()
        return statistics.median(times), max(times), size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    print("| active faults | median scrape | worst scrape | body |")
    print("|---|---|---|---|")
    for faults in (0, 10, 100, 1000):
        print(f"faults={faults}", file=sys.stderr)
        median, worst, size = measure(faults, args.scrapes)
        print(f"| {faults} | {median * 1000:.2f} ms | {worst * 1000:.2f} ms | {size:,} B |")


if __name__ == "__main__":
    main()
