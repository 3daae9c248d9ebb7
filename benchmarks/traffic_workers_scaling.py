"""Worker scaling: the highest rate 1 and N generator processes keep, against one loopback server.

    .venv/bin/python benchmarks/traffic_workers_scaling.py [--seconds 4] [--workers 1,2]
        [--rates 4000,8000,12000,16000,24000,32000]

The server (a minimal HTTP/1.1 responder, uvloop when installed, its own process) answers every
request with 200. For each worker count, the generator runs each rate in turn (in this process,
the workers as processes of their own, as `traffic.workers` runs them); a rate is kept when
>= 99% of its requests were answered in the window and the merged p99 scheduler lag is <= 5 ms.
Prints the highest kept rate per worker count and the efficiency of each added worker (kept(N)
/ (N x kept(1))). On a machine whose cores are busy with other work, every number drops: say so
with the result. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaos.slo.traffic import HttpTraffic, traffic_from_spec  # noqa: E402
from chaos.slo.traffic_workers import WorkerTraffic  # noqa: E402

SERVER = r"""
import asyncio
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


async def one(port: int, rate: float, workers: int, seconds: float) -> tuple[float, float]:
    """(share answered, p99 lag in ms) of `seconds` at `rate`."""
    raw = {"http": {"url": f"http://127.0.0.1:{port}/", "rate": rate, "timeout": 1.0}}
    spec = traffic_from_spec(raw["http"])
    traffic = WorkerTraffic(spec, raw, workers) if workers > 1 else HttpTraffic(spec)
    traffic.start()
    await traffic.ready()
    await asyncio.sleep(seconds + 0.5)
    start, end = traffic.t0 + 0.5, traffic.t0 + 0.5 + seconds  # past the first connections
    await traffic.settle(end)
    window = traffic.window(start, end)
    await traffic.stop()
    lag = window.lag_quantile(99)
    return window.events / (rate * seconds), (lag or 0.0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--rates", default="4000,8000,12000,16000,24000,32000")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    port = int(server.stdout.readline())
    counts = [int(w) for w in args.workers.split(",")]
    kept: dict[int, float] = {}
    print(f"## Worker scaling ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})\n")
    print("| workers | rate | answered | p99 lag | kept |\n|---:|---:|---:|---:|---|")
    try:
        for workers in counts:
            for rate in (float(r) for r in args.rates.split(",")):
                share, lag = asyncio.run(one(port, rate, workers, args.seconds))
                ok = share >= 0.99 and lag <= 5.0
                print(f"| {workers} | {rate:,.0f} | {share:.1%} | {lag:.1f} ms | "
                      f"{'yes' if ok else 'no'} |", flush=True)
                if ok:
                    kept[workers] = max(kept.get(workers, 0.0), rate)
    finally:
        server.terminate()
        server.wait(10)
    print("\n| workers | highest kept rate | efficiency |\n|---:|---:|---:|")
    base = kept.get(1)
    for workers in counts:
        rate = kept.get(workers, 0.0)
        eff = f"{rate / (workers * base):.0%}" if base else "n/a"
        print(f"| {workers} | {rate:,.0f} | {eff} |")


if __name__ == "__main__":
    main()
