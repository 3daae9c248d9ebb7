"""Traffic generator throughput and accuracy, side by side with `wrk`, against one loopback server.

    .venv/bin/python benchmarks/traffic_vs_wrk.py [--seconds 4] [--rates 5000,10000,20000,40000]

The server (a minimal HTTP/1.1 keep-alive responder on uvloop when installed, in its own process
pinned to the last CPU) answers every request with 200 and 2 bytes. `wrk` (Debian: apt-get
install -y wrk; closed loop, C) measures the most this server answers with 1 thread pinned to
CPU 0. Our generator runs pinned to CPU 0 too, open model, at each rate, with the stdlib loop
and with uvloop: achieved rate, latency from the intended send time, and scheduler lag. A rate
is "kept" when it achieved >= 99% of the target with p99 lag <= 5 ms. Markdown on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVER = r"""
import asyncio, os, sys
try:
    import uvloop; uvloop.install()
except ImportError:
    pass
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t; self.buf = b""
    def data_received(self, data):
        self.buf += data
        n = self.buf.count(b"\r\n\r\n")
        if n:
            self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4:]
            self.t.write(RESPONSE * n)
async def main():
    srv = await asyncio.get_running_loop().create_server(P, "127.0.0.1", 0, backlog=4096)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def start_server() -> tuple[subprocess.Popen[str], int]:
    last = cpus()[-1]
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: os.sched_setaffinity(0, {last}))
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def run_wrk(port: int, seconds: int) -> tuple[float, str]:
    wrk = shutil.which("wrk")
    if wrk is None:
        return 0.0, "wrk not installed (apt-get install -y wrk)"
    first = cpus()[0]
    out = subprocess.run([wrk, "-t1", "-c64", f"-d{seconds}s", "--latency",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         timeout=seconds + 30, preexec_fn=lambda: os.sched_setaffinity(0, {first}))
    match = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    p99 = re.search(r"99%\s+(\S+)", out.stdout)
    return (float(match[1]) if match else 0.0), (p99[1] if p99 else "?")


def run_ours(port: int, rate: float, seconds: float, loop: str) -> dict[str, float]:
    """In a child process pinned to CPU 0, so each loop kind starts fresh."""
    code = f"""
import asyncio, json, math, os, sys, time
sys.path.insert(0, {str(ROOT)!r})
os.sched_setaffinity(0, {{{cpus()[0]}}})
from chaos.slo.traffic import HttpTraffic, TrafficSpec, loop_factory
async def main():
    t = HttpTraffic(TrafficSpec("http://127.0.0.1:{port}/", rate={rate}, timeout=5.0,
                                connections=512))
    t.start()
    await asyncio.sleep(0.5)  # warm-up: connections opened
    start = time.monotonic()
    await asyncio.sleep({seconds})
    end = time.monotonic()
    await t.settle(end)
    w = t.window(start, end)
    await t.stop()
    # windows are whole 100 ms ticks of intended send time: count over exactly those
    ticks = math.floor((end - t.t0) * 10) - math.floor((start - t.t0) * 10)
    print(json.dumps(dict(events=w.events, errors=w.errors, seconds=ticks / 10,
                          p50=w.quantile(50), p99=w.quantile(99), lag99=w.lag_quantile(99))))
factory = loop_factory() if {loop == "uvloop"!r} else None
with asyncio.Runner(loop_factory=factory) as runner:
    runner.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=seconds + 60)
    import json
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rates", default="5000,10000,15000,20000,30000,40000")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    server, port = start_server()
    try:
        print(f"wrk: {args.seconds:g}s, 1 thread, 64 connections ...", file=sys.stderr)
        wrk_rps, wrk_p99 = run_wrk(port, int(args.seconds))
        print(f"## Traffic generator vs wrk (loopback, {os.cpu_count()} CPUs, generator and wrk "
              f"pinned to CPU {cpus()[0]}, server to CPU {cpus()[-1]})\n")
        print(f"wrk (closed loop, C, 1 thread, 64 connections): **{wrk_rps:,.0f} req/s**, "
              f"p99 latency {wrk_p99}\n")
        print("| loop | target req/s | achieved req/s | errors | p50 | p99 | p99 lag | kept | "
              "vs wrk |")
        print("|---|---|---|---|---|---|---|---|---|")
        best: dict[str, float] = {}
        for loop in ("asyncio", "uvloop"):
            if loop == "uvloop":
                try:
                    import uvloop  # noqa: F401
                except ImportError:
                    print("| uvloop | not installed (pip install '.[fast]') |||||||")
                    continue
            for rate in rates:
                print(f"{loop} at {rate:,.0f}/s ...", file=sys.stderr)
                r = run_ours(port, rate, args.seconds, loop)
                achieved = r["events"] / r["seconds"]
                kept = achieved >= 0.99 * rate and (r["lag99"] or 0) <= 0.005
                if kept:
                    best[loop] = max(best.get(loop, 0.0), rate)
                ratio = f"{achieved / wrk_rps:.2f}" if wrk_rps else "-"
                print(f"| {loop} | {rate:,.0f} | {achieved:,.0f} | {r['errors']} | "
                      f"{(r['p50'] or 0) * 1000:.2f} ms | {(r['p99'] or 0) * 1000:.2f} ms | "
                      f"{(r['lag99'] or 0) * 1000:.2f} ms | {'yes' if kept else 'no'} | "
                      f"{ratio} |", flush=True)
                time.sleep(0.5)
        print("\n| loop | highest rate kept (p99 lag <= 5 ms) | ratio to wrk | goal |")
        print("|---|---|---|---|")
        for loop, goal in (("asyncio", 20000), ("uvloop", 40000)):
            kept_rate = best.get(loop, 0.0)
            ratio = f"{kept_rate / wrk_rps:.2f}" if wrk_rps else "-"
            print(f"| {loop} | {kept_rate:,.0f} req/s | {ratio} | {goal:,} req/s: "
                  f"{'met' if kept_rate >= goal else 'NOT met'} |")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    asyncio.run(asyncio.sleep(0))  # fail early if asyncio itself is broken
    main()
