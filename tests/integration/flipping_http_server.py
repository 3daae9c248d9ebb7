"""A loopback HTTP/1.1 keep-alive server that answers 500 from a SIGUSR1 until a SIGUSR2 (200
otherwise), logging every request as it answers it: the ground truth for where a report draws
a drop and the service answering again.

Run as a process (a declared service of an experiment):
    python -m tests.integration.flipping_http_server --port PORT --log FILE
Each line of FILE is `epoch_seconds status` (the wall clock when the request arrived), written
and flushed as the request is answered, so the log is whole whenever the service is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from typing import TextIO


class Server:
    def __init__(self, log: TextIO) -> None:
        self.log = log
        self.failing = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                received = time.time()
                status = 500 if self.failing else 200
                body = b"error" if status == 500 else b"ok"
                writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s"
                             % (status, len(body), body))
                self.log.write(f"{received:.6f} {status}\n")
                self.log.flush()
                del head
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    with open(args.log, "a", encoding="utf-8") as log:
        server = Server(log)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, lambda: setattr(server, "failing", True))
        loop.add_signal_handler(signal.SIGUSR2, lambda: setattr(server, "failing", False))
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        srv = await asyncio.start_server(server.handle, "127.0.0.1", args.port, backlog=2048)
        async with srv:
            await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
