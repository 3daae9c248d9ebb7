"""A loopback HTTP/1.1 keep-alive server with a known mix of errors and delays that logs every
request it answers: the ground truth the traffic generator's measurements are checked against.

Run as a process (its own core, like a real service):
    python -m tests.integration.logged_http_server --log FILE [--error-every N] [--delay-at ...]
It prints its port on stdout, and writes one line per request to FILE when stopped (SIGTERM):
`status service_seconds`.

Request i (counted from 0) gets a 500 when i % error_every == 0 and is delayed by --delay when
i % 50 is in --delay-at; --stall-after S blocks the whole server once for --stall-for seconds,
S seconds after the first request (the coordinated-omission case).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time


class Server:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.count = 0
        self.log: list[tuple[int, float]] = []
        self.first: float | None = None
        self.stalled = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                received = time.monotonic()
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                i = self.count
                self.count += 1
                if self.first is None:
                    self.first = received
                a = self.args
                if (a.stall_after is not None and not self.stalled
                        and received - self.first >= a.stall_after):
                    self.stalled = True
                    time.sleep(a.stall_for)  # blocks everything, like a GC pause
                status = 500 if a.error_every and i % a.error_every == 0 else 200
                if i % 50 in a.delay_at:
                    await asyncio.sleep(a.delay)
                body = b"error" if status == 500 else b"ok"
                writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s"
                             % (status, len(body), body))
                self.log.append((status, time.monotonic() - received))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--error-every", type=int, default=0)
    parser.add_argument("--delay-at", type=lambda s: {int(x) for x in s.split(",") if x},
                        default=set())
    parser.add_argument("--delay", type=float, default=0.4)
    parser.add_argument("--stall-after", type=float)
    parser.add_argument("--stall-for", type=float, default=1.0)
    args = parser.parse_args()
    server = Server(args)
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0, backlog=2048)
    print(srv.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    srv.close()
    with open(args.log, "w") as out:
        out.writelines(f"{status} {seconds:.6f}\n" for status, seconds in server.log)
    os._exit(0)  # skip cancelling the open connections' handlers


if __name__ == "__main__":
    asyncio.run(main())
