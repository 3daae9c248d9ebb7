"""A loopback HTTP/1.1 keep-alive service whose capacity is fixed by construction: `--slots`
requests are served at once, each takes `--service-time`, the rest queue. Its capacity is
slots / service_time requests per second: below it latency stays at the service time, above it
the queue (and latency) grows without bound. The ground truth for breaking-point searches.

    python -m tests.support.fixed_capacity_server --slots 20 --service-time 0.1

prints its port; stops on SIGTERM.

With `--db PORT` the service time is spent in a database instead: each slot is one connection
to it, held for a whole request-reply round trip. The database is this module too
(`--database`: answers each line after `--service-time`, any number at once), so delay added on
the way to it (the fault proxy's latency in front of it) lengthens every slot's round trip, and
divides the capacity by construction: slots / (service_time + added round-trip delay).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slots", type=int, default=20)
    parser.add_argument("--service-time", type=float, default=0.1)
    parser.add_argument("--db", type=int, help="spend the service time in this database")
    parser.add_argument("--database", action="store_true", help="be the database")
    args = parser.parse_args()
    if args.database:
        server = await asyncio.start_server(database(args.service_time), "127.0.0.1", 0)
    else:
        slot = await (db_slots(args.db, args.slots) if args.db else timed_slots(
            args.slots, args.service_time))
        server = await asyncio.start_server(http(slot), "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


Slot = Callable[[], contextlib.AbstractAsyncContextManager[None]]


async def timed_slots(slots: int, service_time: float) -> Slot:
    semaphore = asyncio.Semaphore(slots)

    @contextlib.asynccontextmanager
    async def slot() -> AsyncIterator[None]:
        async with semaphore:
            await asyncio.sleep(service_time)
            yield

    return slot


async def db_slots(port: int, slots: int) -> Slot:
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(slots):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))

    @contextlib.asynccontextmanager
    async def slot() -> AsyncIterator[None]:
        reader, writer = await pool.get()
        try:
            writer.write(b"query\n")
            await reader.readline()
            yield
        finally:
            pool.put_nowait((reader, writer))

    return slot


def database(service_time: float) -> Callable[..., Any]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readline():
                await asyncio.sleep(service_time)
                writer.write(b"row\n")
        except ConnectionError:
            pass
        finally:
            writer.close()
    return handle


def http(slot: Slot) -> Callable[..., Any]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                async with slot():
                    pass
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
    return handle


if __name__ == "__main__":
    asyncio.run(main())
