"""Guardrail latency: from the breach of an availability guardrail to the start of the revert.

    .venv/bin/python benchmarks/guardrail_latency.py [--trials 20] [--every 100ms]

Each trial is a real `chaos run`: the bundled demo service, open-model traffic at 200 req/s with
a 200 ms timeout, `abort: [availability < 99%]` over the last second, and a fault that freezes
the service (SIGSTOP) for 5 minutes. From the freeze on, every request fails at its timeout, so
the guardrail is breached at injection + timeout (the first failed answers); the revert starts
when `guardrail.breached` is emitted (the run's task is cancelled and cleanup reverts at once).
Times come from the run's journal (one monotonic clock). Goal (issue #3): revert starts within
2 x every + 100 ms of the breach. Markdown on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 0.2

EXPERIMENT = """title: guardrail latency trial
services:
  - name: demo
    run: ["${{python}}", -m, chaos.demo.service, --port, "{port}"]
    ready: {{http: "http://127.0.0.1:{port}/health", timeout: 15s}}
hypothesis:
  traffic: {{http: {{url: "http://127.0.0.1:{port}/", rate: 200/s, timeout: 200ms}}}}
  checks: [availability >= 99%]
  before: {{window: 500ms}}
  during: {{every: {every}, window: 1s, abort: [availability < 99%]}}
faults:
  - type: process.suspend
    target: {{service: demo}}
    start: 300ms
    duration: 5m
limits: {{max_duration: 1h}}
"""


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def trial(every: str, tmp: Path, i: int) -> dict[str, float] | str:
    path = tmp / f"trial-{i}.yaml"
    path.write_text(EXPERIMENT.format(port=free_port(), every=every))
    runs = tmp / f"runs-{i}"
    env = {**os.environ, "CHAOS_RUNS_DIR": str(runs), "CHAOS_STATE_DIR": str(tmp / "state")}
    result = subprocess.run([sys.executable, "-m", "chaos", "run", "--quiet", str(path)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 4:
        return f"exit {result.returncode}: {result.stdout[-300:]}"
    journal = json.loads(next(runs.glob("*/journal.json")).read_text())
    events = {e["event"]: e["t"] for e in journal["events"]}
    breach = events["fault.injected"] + TIMEOUT
    return {"start": events["guardrail.breached"] - breach,
            "done": events["fault.reverted"] - breach}


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--every", default="100ms")
    args = parser.parse_args()
    every = float(args.every.removesuffix("ms")) / 1000
    goal = 2 * every + 0.1
    starts, dones, failures = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.trials):
            print(f"trial {i + 1}/{args.trials}", file=sys.stderr)
            r = trial(args.every, Path(tmp), i)
            if isinstance(r, str):
                failures.append(r)
                continue
            starts.append(r["start"])
            dones.append(r["done"])
    print(f"## Guardrail latency (every {args.every}, {len(starts)} trials, "
          f"{os.cpu_count()} CPUs)\n")
    print("Breach = injection + request timeout (200 ms): the first failed answers.\n")
    print("| from the breach to | min | p50 | p90 | max | goal | within goal |")
    print("|---|---|---|---|---|---|---|")
    for name, values in (("revert starts (guardrail.breached)", starts),
                         ("revert done (fault.reverted)", dones)):
        if not values:
            continue
        q = statistics.quantiles(values, n=10) if len(values) >= 2 else values * 9
        within = sum(v <= goal for v in values)
        print(f"| {name} | {ms(min(values))} | {ms(statistics.median(values))} | {ms(q[8])} | "
              f"{ms(max(values))} | {ms(goal)} | {within}/{len(values)} |")
    if failures:
        print(f"\n{len(failures)} trial(s) did not abort: " + "; ".join(failures[:3]))


if __name__ == "__main__":
    main()
