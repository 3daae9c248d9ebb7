"""A small HTTP service bundled for the quickstart: something real to break.

    GET /health      200 "ok"
    GET /            200 with a small JSON body, after --latency, failing --error-rate of requests
    GET /slow?ms=N   answers after N milliseconds

HTTP/1.1 with keep-alive over asyncio streams; binds 127.0.0.1 by default. With --workers N it
serves / at most N at a time, like a thread pool of that size: the rest wait in line, so its
capacity is about N / --latency requests a second and a flood past it queues (what a rate
limiter in front of it must prevent).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from urllib.parse import parse_qs, urlsplit

from chaos.demo.serving import serve_until_signalled


class Demo:
    def __init__(self, latency: float, error_rate: float, workers: int = 0) -> None:
        self.latency, self.error_rate = latency, error_rate
        self.workers = asyncio.Semaphore(workers) if workers else None
        self.served = 0
        self.started = time.time()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readline()
                if not request:
                    return
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                parts = request.decode("latin-1").split()
                target = parts[1] if len(parts) > 1 else "/"
                status, body = await self.route(target)
                close = headers.get("connection", "").lower() == "close"
                writer.write(
                    f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                    f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n".encode() + body)
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def route(self, target: str) -> tuple[int, bytes]:
        url = urlsplit(target)
        self.served += 1
        if url.path == "/health":
            return 200, b'"ok"'
        if url.path == "/slow":
            ms = float(parse_qs(url.query).get("ms", ["100"])[0])
            await asyncio.sleep(ms / 1000)
            return 200, b'"slow"'
        if self.workers is not None:
            async with self.workers:
                return await self.work()
        return await self.work()

    async def work(self) -> tuple[int, bytes]:
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.error_rate and random.random() < self.error_rate:
            return 500, b'{"error": "injected by --error-rate"}'
        body = {"service": "chaos-demo", "pid": os.getpid(), "served": self.served,
                "uptime": round(time.time() - self.started, 1)}
        return 200, json.dumps(body).encode()


async def serve(host: str, port: int, latency: float, error_rate: float,
                workers: int = 0) -> None:
    demo = Demo(latency, error_rate, workers)
    server = await asyncio.start_server(demo.handle, host, port, reuse_address=True)
    print(f"chaos demo service listening on http://{host}:{port} (pid {os.getpid()})",
          flush=True)
    await serve_until_signalled(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.demo.service", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to /")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of / that fail")
    parser.add_argument("--workers", type=int, default=0,
                        help="requests to / served at once; the rest wait (0: no limit)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.host, args.port, args.latency, args.error_rate, args.workers))
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
