"""Overhead of the fault proxy with no fault: added round-trip latency at a fixed request rate
(open model: requests are sent on a schedule, latency counts from the intended send time) and
bulk throughput, each direct vs through the proxy.

    .venv/bin/python benchmarks/proxy_overhead.py [--rate 1000] [--seconds 5] [--mib 256]

The upstream is a threaded echo/byte server in its own process; the proxy is the same process
the adapter starts (`python -m chaos.adapters.local.proxy_control`); the client is this process.
Everything listens on 127.0.0.1 only; every process is ended in a `finally`.
Goal (issue #4): <= 0.3 ms added p50 at 1k req/s.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = r"""
import socket, sys, threading
def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        while (data := conn.recv(65536)):
            if data.startswith(b"SEND "):
                n, chunk = int(data.split()[1]), b"x" * 65536
                while n > 0:
                    conn.sendall(chunk[:n]); n -= 65536
            else:
                conn.sendall(data)
srv = socket.create_server(("127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def paced_round_trips(port: int, rate: float, seconds: float) -> list[float]:
    """Latency (ms) of 16-byte echoes sent on a fixed schedule, from the intended send time."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out, interval = [], 1.0 / rate
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        intended = start + i * interval
        while (now := time.perf_counter()) < intended:
            if intended - now > 0.0005:
                time.sleep(intended - now - 0.0003)
        sock.sendall(b"0123456789abcdef")
        got = 0
        while got < 16:
            got += len(sock.recv(64))
        out.append((time.perf_counter() - intended) * 1000)
    sock.close()
    return out


def throughput(port: int, mib: int) -> float:
    """MiB/s of a bulk download."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    total = mib * 1024 * 1024
    start = time.perf_counter()
    sock.sendall(b"SEND %d" % total)
    got = 0
    while got < total:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        got += len(chunk)
    sock.close()
    return got / (1024 * 1024) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    proxy = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            assert server.stdout is not None
            upstream = int(server.stdout.readline())
            proxy = subprocess.Popen(
                [sys.executable, "-m", "chaos.adapters.local.proxy_control", "--listen",
                 "127.0.0.1:0", "--upstream", f"127.0.0.1:{upstream}", "--control",
                 str(Path(tmp) / "c.sock")], stdout=subprocess.PIPE, text=True)
            assert proxy.stdout is not None
            port = int(proxy.stdout.readline().split()[1].rsplit(":", 1)[1])
            rows = {}
            for name, target in (("direct", upstream), ("proxy", port)):
                print(f"{name}: paced round trips...", file=sys.stderr)
                paced_round_trips(target, args.rate, 0.5)  # warm-up
                lat = paced_round_trips(target, args.rate, args.seconds)
                print(f"{name}: throughput...", file=sys.stderr)
                rows[name] = (lat, statistics.median(throughput(target, args.mib)
                                                     for _ in range(3)))
        finally:
            for proc in (proxy, server):
                if proc is not None:
                    proc.kill()
                    proc.wait(5)
                    if proc.stdout is not None:
                        proc.stdout.close()
    direct, through = rows["direct"], rows["proxy"]
    print(f"## Fault proxy overhead, no fault ({args.rate:g} req/s for {args.seconds:g} s, "
          f"16-byte echo; {args.mib} MiB downloads)\n")
    print("| path | requests | p50 ms | p90 ms | p99 ms | throughput MiB/s |")
    print("|---|---|---|---|---|---|")
    for name, (lat, mbps) in rows.items():
        print(f"| {name} | {len(lat)} | {percentile(lat, .5):.3f} | {percentile(lat, .9):.3f} | "
              f"{percentile(lat, .99):.3f} | {mbps:.0f} |")
    added50 = percentile(through[0], .5) - percentile(direct[0], .5)
    added99 = percentile(through[0], .99) - percentile(direct[0], .99)
    print(f"| **added by the proxy** | | **{added50:+.3f}** | | **{added99:+.3f}** | "
          f"{through[1] / direct[1]:.0%} of direct |")
    print(f"\nGoal: added p50 <= 0.3 ms at 1k req/s -> "
          f"{'met' if added50 <= 0.3 else 'NOT met'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
