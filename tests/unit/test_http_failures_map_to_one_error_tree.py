"""Every HTTP request but the load generator's goes through chaos.slo.http_client.request():
its failures arrive as one tree (HttpFailed: Unreachable, Untrusted, TimedOut, HttpStatus),
in the root cause's words, with secrets masked and bodies bounded. Against real sockets on
127.0.0.1 served in-process.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from chaos.errors import ProbeError
from chaos.slo.http_client import (
    Client,
    HttpFailed,
    HttpStatus,
    Reply,
    TimedOut,
    Unreachable,
    request,
)

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def ask(answer: Answer, userinfo: str = "", **options: object) -> Reply:
    """request() against a server that runs `answer` for each connection; every connection
    is closed and every handler ended before the loop is."""
    async def main() -> Reply:
        handlers: set[asyncio.Task[None]] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            handlers.add(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await answer(reader, writer)
            except (OSError, asyncio.IncompleteReadError):
                pass  # the client hung up first
            finally:
                writer.transport.abort()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with server:
                at = f"{userinfo}@" if userinfo else ""
                return await request(f"http://{at}127.0.0.1:{port}/",
                                     **options)  # type: ignore[arg-type]
        finally:
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
    return asyncio.run(main())


def replying(raw: bytes) -> Answer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(raw)
        await writer.drain()
        await reader.read()  # until the client hangs up
    return answer


seen: list[bytes] = []  # request heads, newest last


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_is_unreachable_and_says_refused() -> None:
    with pytest.raises(Unreachable) as failed:
        asyncio.run(request(f"http://127.0.0.1:{closed_port()}/"))
    assert failed.value.refused
    assert str(failed.value).startswith("ConnectionRefusedError")
    assert isinstance(failed.value, ProbeError) and failed.value.__cause__ is not None


def test_not_http_is_unreachable_not_a_crash() -> None:
    with pytest.raises(Unreachable) as failed:
        ask(replying(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"))
    assert not failed.value.refused


def test_a_status_is_an_error_only_when_asked() -> None:
    reply = ask(replying(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"))
    assert (reply.status, reply.body, reply.reason) == (503, b"busy", "Service Unavailable")
    with pytest.raises(HttpStatus, match=r"^HTTP 503 Service Unavailable$") as failed:
        reply.raise_for_status()
    assert failed.value.status == 503
    ok = Reply(204, b"").raise_for_status()
    assert ok.status == 204


def test_a_body_is_read_up_to_the_limit_also_from_a_server_that_never_ends_it() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n"
    reply = ask(replying(head + b"x" * 5000), limit=1000)
    assert reply.body == b"x" * 1000


def test_httpx_own_timeout_is_timed_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
    with pytest.raises(TimedOut):
        ask(silent, settings=Client(timeout=0.2))


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer s3cr3t-token\n"},
                                     {"X-Api-Key": "k3y-s3cr3t\r\nX-Injected: 1"}])
def test_secrets_in_headers_never_reach_the_message(headers: dict[str, str]) -> None:
    # a token read from a file keeps its newline: the client refuses the header and says so
    with pytest.raises(HttpFailed) as failed:
        ask(replying(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), headers=headers)
    assert "s3cr3t" not in str(failed.value) and "***" in str(failed.value)


def test_credentials_in_the_url_go_as_basic_auth_and_a_bad_url_is_unreachable() -> None:
    ask(replying(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    assert b"Authorization" not in seen[-1]
    ask(replying(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), "sre:hunter2")
    assert b"Authorization: Basic c3JlOmh1bnRlcjI=\r\n" in seen[-1]
    with pytest.raises(Unreachable, match="not a usable URL") as failed:
        asyncio.run(request("http://sre:hunter2@[::1/"))
    assert "hunter2" not in str(failed.value)
