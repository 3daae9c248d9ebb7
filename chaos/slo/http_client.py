"""One HTTP/1.1 request over asyncio streams, for probes and Prometheus queries.

Both ask one question and close (`Connection: close`), with TLS when the URL says https: the
system's trust store, or a CA file for a private PKI, or no verification when the experiment
says so; credentials in the URL (`user:password@host`) go as basic auth. Bodies are read
however the server frames them (Content-Length, chunked, or until it closes) up to a limit, so
a huge answer (even one huge chunk) cannot exhaust the runner. The caller bounds the time
(asyncio.timeout) and so can cancel it at any await. The open-model load generator keeps its
connections alive and lives in chaos.slo.traffic.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import ssl
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

MAX_BODY = 256 * 1024


class NotHttp(ValueError):
    """The server answered something that is not an HTTP response."""


def tls_context(verify: bool = True, ca_file: str | None = None) -> ssl.SSLContext:
    """One context per setting: loading a trust store blocks the loop for milliseconds, and an
    https probe runs every few hundred. OpenSSL's own variables are part of the setting."""
    return _context(verify, ca_file, os.environ.get("SSL_CERT_FILE"),
                    os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=16)
def _context(verify: bool, ca_file: str | None, *_openssl_env: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def fetch(url: str, *, method: str = "GET", headers: Mapping[str, str] | None = None,
                body: bytes = b"", verify_tls: bool = True, ca_file: str | None = None,
                limit: int = MAX_BODY, agent: str = "chaos-probe") -> tuple[int, bytes]:
    """(status, body) of one request; OSError (ssl.SSLError included) when it cannot connect."""
    parts = urlsplit(url)
    if not parts.hostname:  # open_connection(None, ...) would quietly mean localhost
        raise NotHttp(f"{url!r} names no host")
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    reader, writer = await asyncio.open_connection(parts.hostname, port)
    try:
        if secure:
            # TLS on the open connection, so that `finally` closes the socket also when the
            # handshake fails (a refused certificate), which open_connection(ssl=) leaks
            await writer.start_tls(tls_context(verify_tls, ca_file),
                                   server_hostname=parts.hostname)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {"Host": parts.netloc.rpartition("@")[2], "User-Agent": agent,
                "Connection": "close", "Content-Length": str(len(body)), **(headers or {})}
        if parts.username is not None and not any(k.lower() == "authorization" for k in sent):
            # https://user:password@host/: basic auth, as curl and Prometheus' own clients do
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            sent["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in sent.items()) + "\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        status_line = await reader.readline()
        words = status_line.decode("latin-1").split(" ", 2)
        if len(words) < 2 or not words[1].isdigit():
            raise NotHttp(f"not an HTTP response: {status_line[:60]!r}")
        status = int(words[1])
        return status, await _read_body(reader, method, status, limit)
    finally:
        # abort, not close: a TLS close waits for the server's goodbye, which a cancelled probe
        # must not, and which an ending event loop would cut off, leaking the socket
        writer.transport.abort()


async def _read_body(reader: asyncio.StreamReader, method: str, status: int,
                     limit: int) -> bytes:
    """The whole body (up to `limit`), however many packets it takes: headers first, then by
    Content-Length, chunks, or until the server closes (we asked for `Connection: close`)."""
    length, chunked = None, False
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "content-length" and value.isdigit():
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if method == "HEAD" or status in (204, 304) or status < 200:
        return b""
    if chunked:
        body = b""
        while len(body) < limit:
            try:
                size = int((await reader.readline()).split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:  # not chunked after all: judge what we have
                break
            if size == 0:
                break
            # never more than the limit, also from one huge chunk (Go servers, Prometheus
            # among them, send a whole answer as one chunk)
            if size > limit - len(body):
                body += await reader.readexactly(limit - len(body))
                break
            body += await reader.readexactly(size)
            await reader.readline()  # the CRLF after each chunk
        return body
    if length is not None:
        return await reader.readexactly(min(length, limit))
    body = b""
    while len(body) < limit and (chunk := await reader.read(limit - len(body))):
        body += chunk
    return body
