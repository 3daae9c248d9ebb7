"""The fault proxy: an asyncio TCP relay whose toxics change while connections are live.

Clients connect to `listen`; each connection is relayed to `upstream` by two pumps, one per
direction. A pump reads a chunk, asks the connection which toxics hit that direction now, and
either writes it straight through (no toxics: the fast path) or queues it with a due time for a
writer task that applies latency, bandwidth, slicing and closes. Toxics are added and removed
over a control channel (JSON lines on a unix socket), so a runner, its watchdog or `chaos
recover` in another process can clean traffic up without restarting the proxy. A proxy that is
gone has no toxics: that counts as reverted.

Run standalone: `python -m chaos.adapters.local.proxy --listen A --upstream B --control SOCK`
(the adapter does this) or `chaos proxy` (with a live view). With `--protocol http` the proxy
reads HTTP/1.x requests and applies the `http_*` rules of chaos.adapters.local.proxy_http;
TLS toxics act on new connections before relaying starts (chaos.adapters.local.proxy_tls).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from chaos.adapters.local.proxy_http import Exchange, Rule
from chaos.adapters.local.proxy_tls import Terminator, opening, terminator
from chaos.adapters.local.proxy_toxics import HTTP_KINDS, TLS_KINDS, Toxic

CHUNK = 64 * 1024
QUEUE_CHUNKS = 64  # back-pressure: at most this many chunks wait in a pump's delay queue
CONNECT_TIMEOUT = 5.0
_EOF = b""
_CLOSE = None
PROTOCOLS = ("tcp", "http")
# what an http proxy can do besides its http_* rules (refuse and cut connections)
HTTP_ALSO = ("down",)


def split_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


@dataclass
class Stats:
    accepted: int = 0
    refused: int = 0
    upstream_failed: int = 0
    requests: int = 0  # http: requests read, requests a rule answered or changed, errors
    faulted: int = 0
    http_errors: int = 0
    last_error: str = ""
    bytes: dict[str, int] = field(default_factory=lambda: {"upstream": 0, "downstream": 0})


class Connection:
    """One client connection and its upstream; decides once per toxic whether it is hit."""

    def __init__(self, proxy: Proxy, client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.proxy = proxy
        self.client, self.upstream = client, upstream
        self.peer = str(client[1].get_extra_info("peername"))
        self.opened = time.time()
        self.bytes = {"upstream": 0, "downstream": 0}
        self._hit: dict[str, bool] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = False

    def hit(self, toxic: Toxic) -> bool:
        decided = self._hit.get(toxic.id)
        if decided is None:
            decided = toxic.toxicity >= 1.0 or self.proxy.rng.random() < toxic.toxicity
            self._hit[toxic.id] = decided
        return decided

    def toxics(self, direction: str) -> list[Toxic]:
        return [t for t in self.proxy.toxics.values() if t.applies_to(direction) and self.hit(t)]

    def refresh(self) -> None:
        """Toxics changed: arm timers for resets and timeouts, disarm those of removed ones."""
        loop = asyncio.get_running_loop()
        current = self.proxy.toxics
        for ident in [i for i in self._timers if i not in current]:
            self._timers.pop(ident).cancel()
        for toxic in current.values():
            if toxic.kind == "down":
                self.close(reset=True)
                return
            if toxic.kind in HTTP_KINDS or toxic.id in self._timers or not self.hit(toxic):
                continue
            after = toxic.params.get("after", 0.0)
            if toxic.kind == "reset_peer":
                self._timers[toxic.id] = loop.call_later(after, self.close, True)
            elif toxic.kind == "timeout" and after > 0:
                self._timers[toxic.id] = loop.call_later(after, self.close, False)

    def count(self, direction: str, n: int) -> None:
        self.bytes[direction] += n
        self.proxy.stats.bytes[direction] += n

    async def run(self) -> None:
        if self.proxy.protocol == "http":
            self._tasks = [asyncio.create_task(Exchange(self).run())]
            self.refresh()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self.close()
            return
        self._tasks = [asyncio.create_task(Pump(self, "upstream", self.client[0],
                                                self.upstream[1]).run()),
                       asyncio.create_task(Pump(self, "downstream", self.upstream[0],
                                                self.client[1]).run())]
        self.refresh()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.close()

    def close(self, reset: bool = False) -> None:
        """Close both sides; with `reset`, by RST (SO_LINGER 0), as a crashed peer would."""
        if self.closed:
            return
        self.closed = True
        for timer in self._timers.values():
            timer.cancel()
        for writer in (self.client[1], self.upstream[1]):
            if reset:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
                writer.transport.abort()
            else:
                writer.close()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()


class Pump:
    """One direction of a connection: reader side applies drops and limits, writer side timing."""

    def __init__(self, conn: Connection, direction: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.conn, self.direction = conn, direction
        self.reader, self.writer = reader, writer
        self.queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue(QUEUE_CHUNKS)
        self.pending = 0
        self.next_send = 0.0
        self.loop = asyncio.get_running_loop()

    async def run(self) -> None:
        writer_task = asyncio.create_task(self._write())
        try:
            await self._read()
        except (OSError, asyncio.IncompleteReadError):
            self.conn.close(reset=True)
        finally:
            if self.conn.closed:
                writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await writer_task

    async def _put(self, due: float, data: bytes | None) -> None:
        self.pending += 1
        await self.queue.put((due, data))

    async def _read(self) -> None:
        proxy = self.conn.proxy
        while True:
            data = await self.reader.read(CHUNK)
            if not proxy.toxics and not self.pending:  # the fast path: nothing to do
                if not data:
                    await self._put(0.0, _EOF)
                    return
                self.writer.write(data)
                self._count(len(data))
                await self.writer.drain()
                continue
            toxics = self.conn.toxics(self.direction)
            now = self.loop.time()
            if not data:
                linger = max((t.params.get("delay", 0.0) for t in toxics
                              if t.kind == "slow_close"), default=0.0)
                await self._put(now + linger, _EOF)
                return
            if any(t.kind == "timeout" for t in toxics):
                continue  # a blackhole: the data is dropped
            delay = max((t.sample_delay(proxy.rng) for t in toxics if t.kind == "latency"),
                        default=0.0)
            limit = min((t.params["bytes"] for t in toxics if t.kind == "limit_data"),
                        default=None)
            if limit is not None and self.conn.bytes[self.direction] + len(data) >= limit:
                keep = max(0, int(limit) - self.conn.bytes[self.direction])
                await self._put(now + delay, data[:keep])
                await self._put(now + delay, _CLOSE)
                return
            await self._put(now + delay, data)

    async def _write(self) -> None:
        while True:
            due, data = await self.queue.get()
            wait = due - self.loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is _CLOSE:
                self.conn.close()
                return
            if not data:
                if self.writer.can_write_eof():
                    with contextlib.suppress(OSError):
                        self.writer.write_eof()
                self.pending -= 1
                return
            await self._deliver(data)
            self.pending -= 1

    async def _deliver(self, data: bytes) -> None:
        toxics = self.conn.toxics(self.direction)
        rate = min((t.params["rate"] for t in toxics if t.kind == "bandwidth"), default=0.0)
        slicer = next((t for t in toxics if t.kind == "slicer"), None)
        if not rate and slicer is None:
            self.writer.write(data)
            self._count(len(data))
            await self.writer.drain()
            return
        for piece, pause in self._pieces(data, rate, slicer):
            if rate:
                wait = self.next_send - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                now = self.loop.time()
                # late wake-ups are made up for (within 50 ms), so the average rate holds
                start = self.next_send if now - self.next_send < 0.05 else now
                self.next_send = start + len(piece) / rate
            self.writer.write(piece)
            self._count(len(piece))
            await self.writer.drain()
            if pause:
                await asyncio.sleep(pause)

    def _pieces(self, data: bytes, rate: float,
                slicer: Toxic | None) -> list[tuple[bytes, float]]:
        if slicer is not None:
            size, spread = slicer.params.get("size", 64), slicer.params.get("variation", 0)
            pause, rng = slicer.params.get("delay", 0.0), self.conn.proxy.rng
        else:  # pacing only: pieces of ~20 ms of data keep the rate smooth
            size, spread, pause, rng = max(512.0, rate / 50), 0.0, 0.0, self.conn.proxy.rng
        pieces, pos = [], 0
        while pos < len(data):
            n = max(1, int(size + (rng.uniform(-spread, spread) if spread else 0)))
            pieces.append((data[pos:pos + n], pause))
            pos += n
        return pieces

    def _count(self, n: int) -> None:
        self.conn.count(self.direction, n)


class Proxy:
    """Listens, relays, and holds the current toxics (by id)."""

    def __init__(self, listen: str, upstream: str, seed: int | None = None,
                 protocol: str = "tcp", upstream_tls: bool = False) -> None:
        self.listen, self.upstream = split_address(listen), split_address(upstream)
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        self.protocol = protocol
        if upstream_tls and protocol != "http":
            raise ValueError("upstream_tls needs protocol http (a TCP proxy relays TLS as is)")
        # http: clients speak plain HTTP to the proxy, which speaks TLS to the upstream
        # (re-originated; the upstream's certificate is not verified: this is a test tool)
        self.upstream_ssl: ssl.SSLContext | None = None
        if upstream_tls:
            self.upstream_ssl = ssl.create_default_context()
            self.upstream_ssl.check_hostname = False
            self.upstream_ssl.verify_mode = ssl.CERT_NONE
        self.toxics: dict[str, Toxic] = {}
        self._rules: dict[str, Rule] = {}
        self._terminators: dict[str, Terminator] = {}
        self.connections: set[Connection] = set()
        self.stats = Stats()
        self.rng = random.Random(seed)
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"{self.listen[0]}:{self.listen[1]}"

    @property
    def upstream_text(self) -> str:
        return f"{self.upstream[0]}:{self.upstream[1]}"

    def http_rules(self) -> list[Rule]:
        return list(self._rules.values())

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, *self.listen,
                                                  reuse_address=True, backlog=512)
        if self.listen[1] == 0:
            self.listen = (self.listen[0], self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for term in self._terminators.values():
            await term.stop()
        for conn in list(self.connections):
            conn.close()

    @property
    def down(self) -> bool:
        return any(t.kind == "down" for t in self.toxics.values())

    async def add(self, toxic: Toxic) -> None:
        """Take a toxic on; ValueError (nothing changed) when this proxy cannot apply it."""
        if self.protocol == "http" and toxic.kind not in (*HTTP_KINDS, *HTTP_ALSO):
            raise ValueError(f"the proxy on {self.address} speaks HTTP: a {toxic.kind} toxic "
                             "needs a plain TCP proxy (use http.delay for delays)")
        if self.protocol == "tcp" and toxic.kind in HTTP_KINDS:
            raise ValueError(f"the proxy on {self.address} relays plain TCP: HTTP faults need "
                             "one started with protocol: http")
        if toxic.kind in HTTP_KINDS:
            self._rules[toxic.id] = Rule.of(toxic)
        if toxic.kind == "tls_certificate" and toxic.id not in self._terminators:
            self._terminators[toxic.id] = await terminator(toxic, self.listen[0], self.upstream)
        was_down = self.down
        self.toxics[toxic.id] = toxic
        if self.down and not was_down and self._server is not None:
            self._server.close()  # new connections are refused (ECONNREFUSED)
            self._server = None
        self._refresh()

    async def remove(self, ident: str) -> bool:
        removed = self.toxics.pop(ident, None) is not None
        self._rules.pop(ident, None)
        term = self._terminators.pop(ident, None)
        if term is not None:
            await term.stop()
        if removed and not self.down and self._server is None:
            await self.start()
        self._refresh()
        return removed

    async def expire(self) -> None:
        now = time.time()
        for toxic in [t for t in self.toxics.values() if t.expired(now)]:
            await self.remove(toxic.id)

    def _refresh(self) -> None:
        for conn in list(self.connections):
            conn.refresh()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.accepted += 1
        target = self.upstream
        tls = [t for t in self.toxics.values() if t.kind in TLS_KINDS
               and (t.toxicity >= 1.0 or self.rng.random() < t.toxicity)]
        if tls:  # decided once per connection, before any byte is relayed
            try:
                target = await opening(tls, self._terminators, reader, writer) or target
            except ConnectionAbortedError:
                return
        try:
            up = await self.open_upstream(target)
        except (TimeoutError, OSError):
            self.stats.upstream_failed += 1
            writer.transport.abort()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(self, (reader, writer), up)
        self.connections.add(conn)
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)

    async def open_upstream(self, target: tuple[str, int] | None = None
                            ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the upstream (TLS if it speaks it), or to a TLS terminator."""
        target = target or self.upstream
        context = self.upstream_ssl if target == self.upstream else None
        up = await asyncio.wait_for(asyncio.open_connection(
            *target, ssl=context, server_hostname=target[0] if context else None),
            CONNECT_TIMEOUT)
        sock = up[1].get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return up

    def snapshot(self) -> dict[str, Any]:
        return {
            "listen": self.address, "upstream": self.upstream_text, "protocol": self.protocol,
            "upstream_tls": self.upstream_ssl is not None,
            "requests": self.stats.requests, "faulted": self.stats.faulted,
            "http_errors": self.stats.http_errors, "last_error": self.stats.last_error,
            "toxics": [t.as_dict() for t in self.toxics.values()],
            "accepted": self.stats.accepted, "upstream_failed": self.stats.upstream_failed,
            "bytes": dict(self.stats.bytes),
            "connections": [{"peer": c.peer, "age": round(time.time() - c.opened, 1),
                             "bytes": dict(c.bytes)} for c in list(self.connections)[:100]],
            "open_connections": len(self.connections),
        }

