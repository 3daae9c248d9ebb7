"""A loopback HTTP/1.1 keep-alive server that logs when each request arrived and its path: the
ground truth for load profiles (the rate of each stage) and request mixes (the share of each
path), seen from the server's side.

    python -m tests.support.arrival_log_server --log FILE

prints its port, answers every request 200 at once, and writes `monotonic_seconds path` per
request to FILE when stopped (SIGTERM). `ArrivalServer` runs one for a test.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


class ArrivalServer:
    """This server as a process of the test: its port, then (stopped) the arrival times."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.arrival_log_server", "--log", str(log)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.proc.stdout.close()

    def arrivals(self) -> list[float]:
        """Stop the server; when each request arrived (time.monotonic())."""
        self.proc.terminate()
        self.proc.wait(timeout=10)
        return [float(line.split()[0]) for line in self.log.read_text().splitlines()]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    log: list[tuple[float, str]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.monotonic()
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                log.append((arrived, head.split(b" ", 2)[1].decode("latin-1")))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=2048)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    with open(args.log, "w") as out:
        out.writelines(f"{t:.6f} {path}\n" for t, path in log)


if __name__ == "__main__":
    asyncio.run(main())
