"""Overhead of the HTTP fault proxy (`protocol: http`) with no fault, and with a rule that
matches nothing: added latency of keep-alive GETs sent at a fixed rate (open model: latency
counts from the intended send time), direct vs through the proxy.

    .venv/bin/python benchmarks/http_proxy_overhead.py [--rate 1000] [--seconds 5]

The upstream is a small asyncio HTTP/1.1 server in its own process; the proxy is the process the
adapter starts (`python -m chaos.adapters.local.proxy_control --protocol http`); the client is
this process (one keep-alive connection). Everything listens on 127.0.0.1 only; every process is
ended in a `finally`. Goal (issue #16): <= 0.5 ms added p50 at 1k req/s.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SERVER = r"""
import asyncio
async def handle(reader, writer):
    try:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""
REQUEST = b"GET /bench HTTP/1.1\r\nHost: bench\r\n\r\n"
ANSWER_LEN = len(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def paced_gets(port: int, rate: float, seconds: float) -> list[float]:
    """Latency (ms) of keep-alive GETs sent on a fixed schedule, from the intended send time."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out, interval = [], 1.0 / rate
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        intended = start + i * interval
        while (now := time.perf_counter()) < intended:
            if intended - now > 0.0005:
                time.sleep(intended - now - 0.0003)
        sock.sendall(REQUEST)
        got = 0
        while got < ANSWER_LEN:
            chunk = sock.recv(4096)
            if not chunk:
                raise SystemExit("the connection closed")
            got += len(chunk)
        out.append((time.perf_counter() - intended) * 1000)
    sock.close()
    return out


def add_rule(control: str) -> None:
    from chaos.adapters.local.proxy_control import request

    toxic: dict[str, Any] = {"id": "never", "kind": "http_abort", "rule": {
        "status": 503, "match": {"path_prefix": "/never", "method": "POST"}}}
    asyncio.run(request(control, {"op": "add", "toxic": toxic}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    proxy = None
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        control = str(Path(tmp) / "c.sock")
        try:
            assert server.stdout is not None
            upstream = int(server.stdout.readline())
            proxy = subprocess.Popen(
                [sys.executable, "-m", "chaos.adapters.local.proxy_control", "--listen",
                 "127.0.0.1:0", "--upstream", f"127.0.0.1:{upstream}", "--control", control,
                 "--protocol", "http"], stdout=subprocess.PIPE, text=True)
            assert proxy.stdout is not None
            port = int(proxy.stdout.readline().split()[1].rsplit(":", 1)[1])
            for name, target in (("direct", upstream), ("http proxy, no fault", port),
                                 ("http proxy, a rule matching nothing", port)):
                if name.endswith("nothing"):
                    add_rule(control)
                print(f"{name}...", file=sys.stderr)
                paced_gets(target, args.rate, 0.5)  # warm-up
                rows[name] = paced_gets(target, args.rate, args.seconds)
        finally:
            for proc in (proxy, server):
                if proc is not None:
                    proc.kill()
                    proc.wait(5)
                    if proc.stdout is not None:
                        proc.stdout.close()
    direct = rows["direct"]
    print(f"## HTTP fault proxy overhead ({args.rate:g} req/s for {args.seconds:g} s, "
          "keep-alive GET, 2-byte body)\n")
    print("| path | requests | p50 ms | p90 ms | p99 ms | added p50 ms | added p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, lat in rows.items():
        print(f"| {name} | {len(lat)} | {percentile(lat, .5):.3f} | {percentile(lat, .9):.3f} "
              f"| {percentile(lat, .99):.3f} | "
              f"{percentile(lat, .5) - percentile(direct, .5):+.3f} | "
              f"{percentile(lat, .99) - percentile(direct, .99):+.3f} |")
    added = percentile(rows["http proxy, no fault"], .5) - percentile(direct, .5)
    print(f"\nGoal: added p50 <= 0.5 ms at 1k req/s with no fault -> "
          f"{'met' if added <= 0.5 else 'NOT met'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
