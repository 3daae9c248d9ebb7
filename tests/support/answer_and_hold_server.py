"""A TCP server on 127.0.0.1 that answers every request with fixed bytes and then holds the
connection open: what a stalled or endless HTTP answer looks like to a client, byte for byte.
Probe tests and the Prometheus client's tests feed it truncated, oversized or malformed answers.
"""

from __future__ import annotations

import asyncio
import contextlib


async def answer_and_hold(answer: bytes, seen: list[bytes]) -> asyncio.Server:
    """A server on 127.0.0.1 that records the request's head, writes `answer` and then holds
    the connection open (as a stalled or huge answer would)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            seen.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(answer)
            await writer.drain()
            with contextlib.suppress(OSError):
                await reader.read()  # until the client hangs up
        finally:
            writer.transport.abort()
    return await asyncio.start_server(handle, "127.0.0.1", 0)
