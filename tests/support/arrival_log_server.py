"""A loopback HTTP/1.1 keep-alive server that logs when each request arrived and its path: the
ground truth for load profiles (the rate of each stage) and request mixes (the share of each
path), seen from the server's side.

    python -m tests.support.arrival_log_server --log FILE

prints its port, answers every request 200 at once, and writes `monotonic_seconds path` per
request to FILE when stopped (SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time


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
