"""HTTP/1.1 on the generator's keep-alive connections: one asyncio protocol per connection.

A protocol rather than a stream reader/writer pair, and a hand-written response parser rather
than an HTTP library: the generator's cost per request is what limits its rate, and its timing
(latency from the intended send time, timeouts swept by the generator) must not depend on a
client's pool or retries. Every other HTTP request goes through chaos.slo.http_client.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from chaos.slo.traffic import HttpTraffic


class Connection(asyncio.Protocol):
    """One keep-alive connection, at most one request outstanding (no pipelining).

    A protocol rather than a stream reader/writer pair: the generator's cost per request is
    what limits its rate, and a protocol answers without a task, a future or a timer per
    request (timeouts are swept, see HttpTraffic._sweep)."""

    def __init__(self, owner: HttpTraffic) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.due: float | None = None  # intended send time of the request on the wire
        self.lag = 0.0
        self.until_close = False  # a response without length: complete when the server closes
        self.status = 0
        self.head_only = False  # the request on the wire is a HEAD: its answer has no body

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's do not subclass it

    def send(self, due: float, lag: float) -> None:
        assert self.transport is not None
        self.due, self.lag = due, lag
        self.buffer.clear()  # anything a server said unasked (a 408 before closing) is stale
        request, self.head_only = self.owner.next_request()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.due is None or self.until_close:
            return
        try:
            parsed = parse_response(self.buffer, self.head_only)
        except ValueError as exc:
            self.fail(f"bad response: {exc}")
            return
        if parsed is None:
            return  # incomplete
        status, used, reusable = parsed
        if used < 0:  # body until the server closes
            self.until_close, self.status = True, status
            return
        del self.buffer[:used]
        due, self.due = self.due, None
        self.owner.answered(self, due, self.lag, status, reusable and not self.buffer)

    def fail(self, error: str, timed_out: bool = False) -> None:
        """The request on this connection failed: count it and drop the connection."""
        due, self.due = self.due, None
        if self.transport is not None:
            self.transport.abort()
        if due is not None:
            self.owner.record(due, self.lag, False, error, timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        due, self.due = self.due, None
        if due is not None:
            if self.until_close:
                self.owner.record(due, self.lag, self.status < 500, f"HTTP {self.status}")
            else:
                self.owner.record(due, self.lag, False,
                                  f"connection lost: {exc}" if exc else "connection closed")
        self.owner.lost(self)


def parse_response(buffer: bytearray, head_only: bool) -> tuple[int, int, bool] | None:
    """(status, bytes used, reusable) of the complete response at the start of `buffer`, None
    if incomplete; bytes used is -1 for a body that ends when the server closes."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > 65536:
            raise ValueError("response head longer than 64 KiB")
        return None
    head = bytes(buffer[:end])
    if not head.startswith(b"HTTP/1.") or len(head) < 12:
        raise ValueError(f"not an HTTP/1.x response: {head[:40]!r}")
    status = int(head[9:12])
    length: int | None = None
    chunked, reusable = False, head[7:8] == b"1"
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            reusable = reusable and b"close" not in value.lower()
    body = end + 4
    if head_only or status in (204, 304) or 100 <= status < 200:
        return status, body, reusable
    if chunked:
        pos = body
        while True:
            line_end = buffer.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buffer[pos:line_end]).split(b";")[0], 16)
            pos = line_end + 2 + size + 2
            if len(buffer) < pos:
                return None
            if size == 0:
                return status, pos, reusable
    if length is not None:
        return (status, body + length, reusable) if len(buffer) >= body + length else None
    return status, -1, False
