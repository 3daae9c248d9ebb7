"""Endurance: the runner's memory over a long run of steady open-model traffic.

    .venv/bin/python benchmarks/endurance_memory.py [--minutes 60] [--rate 500]
        [--pythonpath DIR] [--proxy]

A real `chaos run` sends `--rate` req/s to the bundled demo service for `--minutes` (one
`before` window); its RSS is read from outside (psutil) every 5 s. With `--proxy` the traffic
goes through the fault proxy (`chaos proxy`, a declared service) and, after a 1-minute `before`
window, a `network.latency` fault (5 ms) is held on it for the rest of the run: the runner's
memory with a fault injected, its ledger entry and watchdog alive, for the whole hour. Prints, per minute, the RSS
and its growth since the end of minute 1, the least-squares slope after minute 1, then the
sizes of the journal and of the HTML report rendered from it. `--pythonpath` runs another
checkout of chaos (e.g. `git archive BASE chaos | tar -x -C /tmp/base`) for a before/after.
Everything is local: loopback only, temp dirs.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def slope(points: list[tuple[float, float]]) -> float:
    """MiB per minute, least squares."""
    n = len(points)
    mt, mm = sum(t for t, _ in points) / n, sum(m for _, m in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (m - mm) for t, m in points) / den * 60 if den else 0.0


def plain(args: argparse.Namespace, port: int, seconds: int) -> str:
    return f"""title: endurance, {args.rate} req/s for {args.minutes} min
hypothesis:
  traffic: {{http: {{url: "http://127.0.0.1:{port}/", rate: {args.rate}/s, timeout: 1s,
                      max_lag: 250ms}}}}
  checks: [availability >= 0%]
  before: {{window: {seconds}s}}
faults: []
limits: {{max_duration: 24h}}
"""


def through_proxy(args: argparse.Namespace, port: int, proxy: int, seconds: int) -> str:
    held = max(seconds - 60, 10)
    return f"""title: endurance through the fault proxy, {args.rate} req/s for {args.minutes} min
services:
  - name: proxy
    run: ["{sys.executable}", -m, chaos, proxy, -q, --listen, "127.0.0.1:{proxy}",
          --upstream, "127.0.0.1:{port}"]
    ready: {{tcp: "127.0.0.1:{proxy}", timeout: 15s}}
hypothesis:
  traffic: {{http: {{url: "http://127.0.0.1:{proxy}/", rate: {args.rate}/s, timeout: 1s,
                      max_lag: 250ms}}}}
  checks: [availability >= 0%]
  before: {{window: 50s}}
  during: {{}}
  after: {{settle: 1s, window: 5s}}
faults:
  - name: slow-upstream
    type: network.latency
    target: {{proxy: {{listen: "127.0.0.1:{proxy}", upstream: "127.0.0.1:{port}"}}}}
    with: {{delay: 5ms}}
    duration: {held}s
limits: {{max_duration: 24h, max_targets: 1}}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--pythonpath", default="")
    parser.add_argument("--proxy", action="store_true",
                        help="send through the fault proxy with a latency fault held on it")
    args = parser.parse_args()
    env = {**os.environ}
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath
    work = Path(tempfile.mkdtemp(prefix="chaos-endurance-"))
    env.update(CHAOS_STATE_DIR=str(work / "state"), CHAOS_RUNS_DIR=str(work / "runs"))
    port = free_port()
    service = subprocess.Popen([sys.executable, "-m", "chaos.demo.service", "--port", str(port)],
                               env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    time.sleep(1.5)
    seconds = int(args.minutes * 60)
    experiment = work / "endurance.yaml"
    experiment.write_text(plain(args, port, seconds) if not args.proxy
                          else through_proxy(args, port, free_port(), seconds))
    runner = subprocess.Popen([sys.executable, "-m", "chaos", "run", "-q", str(experiment)],
                              env=env, cwd=work, stdout=subprocess.DEVNULL)
    proc, started, points = psutil.Process(runner.pid), time.monotonic(), []
    try:
        while runner.poll() is None:
            try:
                points.append((time.monotonic() - started, proc.memory_info().rss / 2**20))
            except psutil.Error:
                break
            print(f"{points[-1][0]:7.0f} s {points[-1][1]:7.1f} MiB", file=sys.stderr)
            time.sleep(5)
        runner.wait()
    finally:
        service.terminate()
        service.wait(10)
    base = next((m for t, m in points if t >= 60), points[-1][1])
    print(f"## Runner RSS, {args.rate} req/s for {args.minutes} min"
          f"{' through the fault proxy, 5 ms latency held' if args.proxy else ''} "
          f"({'PYTHONPATH=' + args.pythonpath if args.pythonpath else 'this tree'})\n")
    print("| minute | RSS MiB | since minute 1 |\n|---:|---:|---:|")
    for minute in range(int(args.minutes) + 1):
        near = [m for t, m in points if minute * 60 <= t < minute * 60 + 5]
        if near:
            print(f"| {minute} | {near[0]:.1f} | {near[0] - base:+.1f} |")
    after = [(t, m) for t, m in points if t >= 60]
    print(f"\nslope after minute 1: {slope(after) if len(after) > 2 else float('nan'):+.2f} "
          f"MiB/min; exit code {runner.returncode}")
    journal = next((work / "runs").glob("*/journal.json"))
    html = work / "report.html"
    subprocess.run([sys.executable, "-m", "chaos", "report", "--format", "html", "-o",
                    str(html), str(journal)], env=env, cwd=work, check=False,
                   stdout=subprocess.DEVNULL)
    print(f"journal {journal.stat().st_size / 1024:,.0f} KiB, HTML report "
          f"{html.stat().st_size / 1024 if html.exists() else float('nan'):,.0f} KiB")


if __name__ == "__main__":
    main()
