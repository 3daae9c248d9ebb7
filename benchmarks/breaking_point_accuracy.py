"""Breaking point vs a fine manual sweep, without and with a fault, on a service whose capacity
is known by construction.

    .venv/bin/python benchmarks/breaking_point_accuracy.py [--slots 20] [--service-time 0.1]
        [--delay 0.1] [--sweep-step 0.02] [--sweep-seconds 4] [--every 2] [--step 0.04]

The service is tests/support/fixed_capacity_server.py: `--slots` connections to a database
that answers after `--service-time`, through the fault proxy. Capacity: slots / service_time
(200 req/s by default); with the proxy's `network.latency` of `--delay` on the replies, slots /
(service_time + delay) (100 req/s).

1. The manual sweep: the generator (in this process) sends each rate from 70% to 130% of the
   capacity in steps of `--sweep-step` x capacity for `--sweep-seconds`, the queue drained in
   between; a rate holds when p99 <= 300 ms and availability >= 99% over its last 2/3.
2. The breaking point: one real `chaos run` with `breaking_point: {under_fault: true}`
   (steps of `--step` x capacity from 25%, `every` seconds each, stop at p99 > 300 ms), its
   wall time, and both sustainable rates against the sweep's (goal: within ±5%).

Loopback only. On a loaded machine the sweep and the search both see the load: say so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaos.slo.traffic import HttpTraffic, traffic_from_spec  # noqa: E402

P99, AVAILABILITY = 0.3, 0.99


def _spawn(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.fixed_capacity_server", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_tcp(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


async def _holds(port: int, rate: float, seconds: float) -> tuple[bool, float | None, float]:
    spec = traffic_from_spec({"url": f"http://127.0.0.1:{port}/", "rate": rate, "timeout": 5.0,
                              "max_lag": 0.25})
    traffic = HttpTraffic(spec)
    traffic.start()
    await asyncio.sleep(seconds)
    start, end = traffic.t0 + seconds / 3, traffic.t0 + seconds
    await traffic.settle(end)
    window = traffic.window(start, end)
    await traffic.drain(10.0)
    p99 = window.seen_quantile(99)
    availability = 1 - window.errors / window.events if window.events else 0.0
    return (p99 is not None and p99 <= P99 and availability >= AVAILABILITY), p99, availability


def sweep(port: int, capacity: float, step: float, seconds: float) -> float:
    held = 0.0
    print(f"\n| rate | p99 | availability | holds |\n|---:|---:|---:|---|")
    rate = 0.7 * capacity
    while rate <= 1.3 * capacity + 1e-9:
        ok, p99, availability = asyncio.run(_holds(port, rate, seconds))
        print(f"| {rate:,.0f} | {'n/a' if p99 is None else f'{p99 * 1000:.0f} ms'} | "
              f"{availability:.2%} | {'yes' if ok else 'no'} |", flush=True)
        if ok:
            held = rate
        else:
            break
        rate += step * capacity
        time.sleep(1.0)  # the queue drains
    return held


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slots", type=int, default=20)
    parser.add_argument("--service-time", type=float, default=0.1)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--sweep-step", type=float, default=0.02)
    parser.add_argument("--sweep-seconds", type=float, default=4.0)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--step", type=float, default=0.04)
    parser.add_argument("--no-sweep", action="store_true", help="the search only")
    args = parser.parse_args()
    capacity = args.slots / args.service_time
    faulted = args.slots / (args.service_time + args.delay)
    state = tempfile.mkdtemp(prefix="chaos-bp-")
    env = {**os.environ, "CHAOS_STATE_DIR": state}
    os.environ["CHAOS_STATE_DIR"] = state
    db, db_port = _spawn("--database", "--service-time", str(args.service_time))
    proxy_port = _free_port()
    proxy = subprocess.Popen([sys.executable, "-m", "chaos", "proxy", "-q", "--listen",
                              f"127.0.0.1:{proxy_port}", "--upstream", f"127.0.0.1:{db_port}"],
                             cwd=ROOT, stdout=subprocess.DEVNULL, env=env)
    _wait_tcp(proxy_port)
    front, port = _spawn("--slots", str(args.slots), "--db", str(proxy_port))
    print(f"## Breaking point vs manual sweep ({os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}); capacity by construction {capacity:,.0f} req/s, "
          f"{faulted:,.0f} with the fault")
    try:
        print("\n### Manual sweep, no fault", end="")
        swept = 0.0 if args.no_sweep else sweep(port, capacity, args.sweep_step,
                                                args.sweep_seconds)
        print("\n### Manual sweep, replies delayed by the proxy", end="")
        with_fault = subprocess.Popen(
            [sys.executable, "-m", "chaos", "inject", "network.latency", "--listen",
             f"127.0.0.1:{proxy_port}", "--upstream", f"127.0.0.1:{db_port}", "--delay",
             f"{args.delay * 1000:.0f}ms", "--for", "10m"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(3)
        try:
            swept_fault = 0.0 if args.no_sweep else sweep(port, faulted, args.sweep_step,
                                                          args.sweep_seconds)
        finally:
            with_fault.send_signal(signal.SIGINT)  # reverts at once
            with_fault.wait(30)
        first, step = 0.25 * capacity, args.step * capacity
        top = 1.5 * capacity
        steps = int((top - first) / step) + 1
        span = steps * args.every
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bp.yaml"
            path.write_text(f"""title: breaking point accuracy
hypothesis:
  traffic:
    http: {{url: "http://127.0.0.1:{port}/", max_lag: 250ms, timeout: 5s}}
    profile:
      breaking_point: {{from: {first:g}/s, step: {step:g}/s, every: {args.every:g}s,
                        max: {top:g}/s, under_fault: true,
                        until: [latency.p99 > {P99 * 1000:g}ms, availability < 99%]}}
  checks: [availability >= 0%]
  before: {{window: {span:g}s}}
  after: {{window: 1s}}
faults:
  - name: slow-db
    type: network.latency
    target: {{proxy: {{listen: "127.0.0.1:{proxy_port}", upstream: "127.0.0.1:{db_port}"}}}}
    with: {{delay: {args.delay * 1000:g}ms}}
    duration: {span + 1:g}s
""")
            started = time.monotonic()
            run = subprocess.run([sys.executable, "-m", "chaos", "run", str(path)], cwd=tmp,
                                 capture_output=True, text=True, env=env, timeout=1800)
            wall = time.monotonic() - started
            found = next(Path(tmp).glob("*/*/journal.json"), None)
            if found is None:
                raise SystemExit(f"chaos run left no journal:\n{run.stdout}\n{run.stderr}")
            journal = json.loads(found.read_text())
        cap = journal["capacity"] or {}
        under = cap.get("under_fault") or {}
        print(f"\n### Breaking point (`chaos run`, exit {run.returncode}, {wall:.0f} s wall, "
              f"{steps} steps of {step:g}/s x {args.every:g} s per search)\n")
        print("| | construction | manual sweep | breaking point | vs sweep |\n"
              "|---|---:|---:|---:|---:|")
        for name, truth, manual, found in (
                ("no fault", capacity, swept, cap.get("sustainable_rate")),
                ("slow-db", faulted, swept_fault, under.get("sustainable_rate"))):
            diff = f"{(found - manual) / manual:+.1%}" if found and manual else "n/a"
            print(f"| {name} | {truth:,.0f} | {manual:,.0f} | "
                  f"{'n/a' if found is None else f'{found:,.0f}'} | {diff} |")
        print(f"\nlost: {cap.get('lost')}")
    finally:
        for proc in (front, proxy, db):
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
