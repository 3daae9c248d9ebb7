"""A loopback HTTP/1.1 keep-alive service whose capacity is fixed by construction: `--slots`
requests are served at once, each takes `--service-time`, the rest queue. Its capacity is
slots / service_time requests per second: below it latency stays at the service time, above it
the queue (and latency) grows without bound. The ground truth for breaking-point searches.

    python -m tests.support.fixed_capacity_server --slots 20 --service-time 0.1

prints its port; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slots", type=int, default=20)
    parser.add_argument("--service-time", type=float, default=0.1)
    args = parser.parse_args()
    slots = asyncio.Semaphore(args.slots)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                async with slots:
                    await asyncio.sleep(args.service_time)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
