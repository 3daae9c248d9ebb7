"""HTTP faults on the fault proxy: answer, delay, cut or rewrite single requests.

A proxy started with `protocol: http` reads each request head, asks its rules which hit that
request, and either answers itself (abort, throttle) or forwards it and passes the response on,
delayed, cut short (reset) or rewritten (replace). HTTP/1.1 and 1.0, keep-alive, Content-Length,
chunked and close-delimited bodies are relayed as they arrive; one request at a time per
connection (pipelined requests wait their turn, as HTTP/1.1 allows); `101 Switching Protocols`
turns the connection into a plain relay. HTTP/2 with prior knowledge is answered 505.

Rules are toxics of kind `http_*` (proxy_toxics), so adding, removing, expiry and revert are the
TCP toxics' own; they are read again for every request, so a rule added or removed takes effect
on connections that are already open. Each rule draws its `percent` from its own generator,
seeded by the fault, so the sequence of decisions is reproducible.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from chaos.adapters.local.proxy_toxics import Toxic

if TYPE_CHECKING:
    from chaos.adapters.local.proxy import Connection

HEAD_LIMIT = 64 * 1024
CHUNK = 64 * 1024
RESPONSE_TIMEOUT = 300.0  # an upstream that never answers still frees the connection


class BadMessage(Exception):
    """What came over the wire is not HTTP/1.x."""


@dataclass
class Head:
    """A request or status line and its header fields, as received."""

    start: str
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def tokens(self, name: str) -> set[str]:
        name = name.lower()
        return {t.strip().lower() for k, v in self.headers if k.lower() == name
                for t in v.split(",")}

    def without(self, *names: str) -> list[tuple[str, str]]:
        drop = {n.lower() for n in names}
        return [(k, v) for k, v in self.headers if k.lower() not in drop]

    def encode(self) -> bytes:
        lines = [self.start, *(f"{k}: {v}" for k, v in self.headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def read_head(reader: asyncio.StreamReader) -> Head | None:
    """The next message head; None at a clean end of stream before it."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise BadMessage("the stream ended inside a message head") from None
    except asyncio.LimitOverrunError:
        raise BadMessage(f"a message head longer than {HEAD_LIMIT} bytes") from None
    lines = raw.decode("latin-1").split("\r\n")
    while lines and not lines[0]:  # stray CRLF between messages (RFC 9112 2.2)
        lines.pop(0)
    if not lines:
        return None
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadMessage(f"a malformed header line {line[:80]!r}")
        headers.append((name, value.strip()))
    return Head(lines[0], headers)


def framing(head: Head, *, request: bool, method: str = "", status: int = 0) -> str | int:
    """How the body after `head` ends: "chunked", "close", or its length in bytes."""
    if not request and (method == "HEAD" or 100 <= status < 200 or status in (204, 304)):
        return 0
    if "chunked" in head.tokens("transfer-encoding"):
        return "chunked"
    length = head.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise BadMessage(f"a bad Content-Length {length[:40]!r}")
        return int(length)
    return 0 if request else "close"


async def body(reader: asyncio.StreamReader, frame: str | int) -> AsyncIterator[bytes]:
    """The body's bytes as they arrive, framing included (chunks are passed on unchanged)."""
    if isinstance(frame, int):
        left = frame
        while left:
            data = await reader.read(min(left, CHUNK))
            if not data:
                raise BadMessage("the stream ended inside a body")
            left -= len(data)
            yield data
    elif frame == "close":
        while data := await reader.read(CHUNK):
            yield data
    else:
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise BadMessage(f"a bad chunk size line {line[:40]!r}") from None
            yield line
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    yield trailer
                yield trailer
                return
            yield await reader.readexactly(size + 2)


def response(status: int, body_text: bytes = b"", headers: Mapping[str, str] | None = None,
             close: bool = False) -> bytes:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
    fields = [(k, v) for k, v in (headers or {}).items()
              if k.lower() not in ("content-length", "transfer-encoding", "connection")]
    fields += [("Content-Length", str(len(body_text)))]
    if close:
        fields.append(("Connection", "close"))
    return Head(f"HTTP/1.1 {status} {phrase}".rstrip(), fields).encode() + body_text


@dataclass
class Rule:
    """A compiled `http_*` toxic: which requests it hits and what it does to them."""

    toxic: Toxic
    rng: random.Random
    path: str | None = None
    prefix: str | None = None
    regex: re.Pattern[str] | None = None
    methods: frozenset[str] = frozenset()
    headers: tuple[tuple[str, re.Pattern[str]], ...] = ()
    tokens: float = 0.0
    refilled: float = field(default_factory=time.monotonic)

    @classmethod
    def of(cls, toxic: Toxic) -> Rule:
        data: Mapping[str, Any] = toxic.rule or {}
        match: Mapping[str, Any] = data.get("match") or {}
        try:
            regex = re.compile(match["path_regex"]) if match.get("path_regex") else None
            headers = tuple((str(k), re.compile(str(v)))
                            for k, v in dict(match.get("headers") or {}).items())
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        status = data.get("status")
        if status is not None and not 100 <= int(status) <= 599:
            raise ValueError(f"status must be from 100 to 599, got {status}")
        methods = frozenset(m.strip().upper() for m in str(match.get("method") or "").split(",")
                            if m.strip())
        return cls(toxic, random.Random(str(data.get("seed", toxic.id))),
                   match.get("path"), match.get("path_prefix"), regex, methods, headers,
                   tokens=float(data.get("rate", 0.0)))

    @property
    def data(self) -> Mapping[str, Any]:
        return self.toxic.rule or {}

    def hits(self, method: str, path: str, head: Head) -> bool:
        if self.methods and method not in self.methods:
            return False
        if self.path is not None and path != self.path:
            return False
        if self.prefix is not None and not path.startswith(self.prefix):
            return False
        if self.regex is not None and not self.regex.fullmatch(path):
            return False
        for name, pattern in self.headers:
            value = head.get(name)
            if value is None or not pattern.search(value):
                return False
        share = self.toxic.toxicity
        return share >= 1.0 or self.rng.random() < share

    def over_rate(self) -> bool:
        """Token bucket (burst of one second's worth): True when this request is one too many."""
        rate = float(self.data.get("rate", 0.0))
        now = time.monotonic()
        self.tokens = min(max(rate, 1.0), self.tokens + (now - self.refilled) * rate)
        self.refilled = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return False
        return True

    def delay(self) -> float:
        base, jitter = float(self.data.get("delay", 0.0)), float(self.data.get("jitter", 0.0))
        return max(0.0, base + (self.rng.uniform(-jitter, jitter) if jitter else 0.0))


def target_path(start: str) -> tuple[str, str]:
    """(method, path without the query) of a request line; BadMessage if it is not one."""
    parts = start.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise BadMessage(f"not an HTTP request line: {start[:80]!r}")
    method, target = parts[0], parts[1]
    if "://" in target:  # absolute form
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    return method, target.split("?", 1)[0].split("#", 1)[0]


class Exchange:
    """Serves one client connection in HTTP mode, request by request."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.proxy = conn.proxy
        self.creader, self.cwriter = conn.client
        self.ureader, self.uwriter = conn.upstream

    async def run(self) -> None:
        try:
            while not self.conn.closed and await self._one():
                pass
        except BadMessage as exc:
            self.proxy.stats.http_errors += 1
            self.proxy.stats.last_error = f"client: {exc}"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass

    async def _send(self, data: bytes, writer: asyncio.StreamWriter | None = None) -> None:
        writer = writer or self.cwriter
        writer.write(data)
        self.conn.count("downstream" if writer is self.cwriter else "upstream", len(data))
        await writer.drain()

    async def _one(self) -> bool:
        """One request and its response; False when the connection is over."""
        head = await read_head(self.creader)
        if head is None:
            return False
        if head.start.startswith("PRI * HTTP/2"):
            await self._send(response(505, b"chaos fault proxy: HTTP/2 is not supported; "
                                           b"use HTTP/1.1\n", close=True))
            return False
        method, path = target_path(head.start)
        self.proxy.stats.requests += 1
        rules = [r for r in self.proxy.http_rules() if r.hits(method, path, head)]
        frame = framing(head, request=True)
        keep = "close" not in head.tokens("connection") and not head.start.endswith("HTTP/1.0")
        for rule in rules:
            kind = rule.toxic.kind
            if kind == "http_abort" or (kind == "http_throttle" and rule.over_rate()):
                return await self._answer(rule, head, frame, keep)
        wait = sum(r.delay() for r in rules if r.toxic.kind == "http_delay"
                   and r.data.get("phase", "request") == "request")
        if wait:
            await asyncio.sleep(wait)
        return await self._forward(head, method, frame, rules) and keep

    async def _answer(self, rule: Rule, head: Head, frame: str | int, keep: bool) -> bool:
        """The proxy answers itself; the request body is read and dropped first."""
        self.proxy.stats.faulted += 1
        expect = "100-continue" in head.tokens("expect")
        if not expect:
            async for _ in body(self.creader, frame):
                pass
        data = rule.data
        if rule.toxic.kind == "http_throttle":
            status, text = 429, b"chaos fault proxy: too many requests\n"
            extra = {"Retry-After": "1"}
        else:
            status, text = int(data["status"]), str(data.get("body", "")).encode()
            extra = dict(data.get("set_headers") or {})
        await self._send(response(status, text, extra, close=expect or not keep))
        return keep and not expect

    async def _forward(self, head: Head, method: str, frame: str | int,
                       rules: list[Rule]) -> bool:
        if self.ureader.at_eof() or self.uwriter.is_closing():
            # the upstream closed the idle keep-alive connection: open a new one, as proxies do
            self.uwriter.transport.abort()
            try:
                self.conn.upstream = await self.proxy.open_upstream()
            except (TimeoutError, OSError) as exc:
                return await self._upstream_failed(exc)
            self.ureader, self.uwriter = self.conn.upstream
        await self._send(head.encode(), self.uwriter)
        sending = asyncio.create_task(self._request_body(frame))
        try:
            while True:
                try:
                    reply = await asyncio.wait_for(read_head(self.ureader), RESPONSE_TIMEOUT)
                    if reply is None:
                        raise BadMessage("the upstream closed the connection without answering")
                    status = int(reply.start.split(" ")[1]) if reply.start.startswith(
                        "HTTP/1.") and len(reply.start.split(" ")) > 1 else -1
                    if not 100 <= status <= 599:
                        raise BadMessage(f"not an HTTP/1.x status line: {reply.start[:60]!r}")
                except (BadMessage, ValueError, TimeoutError) as exc:
                    return await self._upstream_failed(exc)
                if status == 101:
                    await self._send(reply.encode())
                    await self._relay()
                    return False
                if status < 200:
                    await self._send(reply.encode())
                    continue
                keep = await self._respond(reply, status, method, rules)
                # an upstream that answered before reading the whole request body: the rest
                # of it would be read as the next request, so the connection ends here
                return keep and sending.done()
        finally:
            if not sending.done():
                sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError, BadMessage,
                                     asyncio.IncompleteReadError):
                await sending

    async def _request_body(self, frame: str | int) -> None:
        async for piece in body(self.creader, frame):
            await self._send(piece, self.uwriter)

    async def _upstream_failed(self, exc: Exception) -> bool:
        self.proxy.stats.http_errors += 1
        self.proxy.stats.last_error = f"upstream {self.proxy.upstream_text}: {exc}"
        await self._send(response(502, f"chaos fault proxy: the upstream "
                                       f"{self.proxy.upstream_text} did not answer in HTTP/1.x: "
                                       f"{exc}\n".encode(), close=True))
        return False

    async def _respond(self, reply: Head, status: int, method: str, rules: list[Rule]) -> bool:
        frame = framing(reply, request=False, method=method, status=status)
        keep = frame != "close" and "close" not in reply.tokens("connection")
        wait = sum(r.delay() for r in rules if r.toxic.kind == "http_delay"
                   and r.data.get("phase") == "response")
        if wait:
            await asyncio.sleep(wait)
        reset = next((r for r in rules if r.toxic.kind == "http_reset"), None)
        replace = next((r for r in rules if r.toxic.kind == "http_replace"), None)
        if reset is not None or replace is not None or wait:
            self.proxy.stats.faulted += 1
        if replace is not None:
            reply, new_body = await self._replaced(reply, status, frame, replace.data)
            if new_body is not None:
                frame = len(new_body)
                pieces: AsyncIterator[bytes] = _once(new_body)
            else:
                pieces = body(self.ureader, frame)
        else:
            pieces = body(self.ureader, frame)
        if reset is not None:
            await self._cut(reply, pieces, int(reset.data.get("after", 0)))
            return False
        await self._send(reply.encode())
        async for piece in pieces:
            await self._send(piece)
        return keep

    async def _replaced(self, reply: Head, status: int, frame: str | int,
                        data: Mapping[str, Any]) -> tuple[Head, bytes | None]:
        new_status = int(data.get("status") or status)
        start = reply.start.split(" ")[0] + f" {new_status} " + (
            HTTPStatus(new_status).phrase if new_status in HTTPStatus._value2member_map_ else "")
        set_headers = {str(k): str(v) for k, v in dict(data.get("set_headers") or {}).items()}
        fields = [(k, v) for k, v in reply.headers if k.lower() not in
                  {n.lower() for n in set_headers}] + list(set_headers.items())
        new_body: bytes | None = None
        if data.get("body") is not None:
            async for _ in body(self.ureader, frame):  # the real body is read and dropped
                pass
            new_body = str(data["body"]).encode()
            fields = [(k, v) for k, v in fields if k.lower() not in
                      ("content-length", "transfer-encoding")]
            fields.append(("Content-Length", str(len(new_body))))
        return Head(start.rstrip(), fields), new_body

    async def _cut(self, reply: Head, pieces: AsyncIterator[bytes], after: int) -> None:
        """Pass `after` bytes of the response (head included), then reset the connection."""
        sent, data = 0, reply.encode()
        while sent < after:
            piece = data[:after - sent]
            if piece:
                await self._send(piece)
                sent += len(piece)
            if sent >= after:
                break
            data = await anext(pieces, b"")
            if not data:
                break
        self.conn.close(reset=True)

    async def _relay(self) -> None:
        async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(CHUNK):
                await self._send(data, writer)
            if writer.can_write_eof():
                writer.write_eof()

        await asyncio.gather(copy(self.creader, self.uwriter), copy(self.ureader, self.cwriter),
                             return_exceptions=True)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
