"""The fault proxy's control channel, how proxies are found, and the proxy process itself.

A running proxy serves JSON lines on a unix socket (a private 0700 directory; only this user can
reach it) and leaves a locator file, `STATE/proxies/HOST_PORT.json`, naming the socket, its pid
and create time. The adapter finds a running proxy for a listen address through the locator
(`chaos proxy`, or a proxy declared as a service), or starts one. Revert specs carry the socket
path and a toxic id, which is all another process needs to clean traffic up.

    {"op": "ping"} | {"op": "add", "toxic": {...}} | {"op": "remove", "id": ...}
    {"op": "list"} | {"op": "stats"}         -> {"ok": true, ...} or {"ok": false, "error": ...}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chaos.adapters.local.proxy import Proxy
from chaos.adapters.local.proxy_toxics import parse
from chaos.paths import default_state_dir

REQUEST_TIMEOUT = 3.0
MAX_LINE = 256 * 1024


class ProxyGone(Exception):
    """Nothing answers on the control socket: the proxy has exited."""


def locator_path(listen: str) -> Path:
    return default_state_dir() / "proxies" / (listen.replace(":", "_").replace("/", "_") + ".json")


def control_path(listen: str) -> Path:
    """A short socket path (unix sockets allow ~100 bytes) that is unique per state dir."""
    key = hashlib.sha1(f"{default_state_dir().resolve()}|{listen}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"chaos-proxy-{os.getuid()}" / f"{key}.sock"


def read_locator(listen: str) -> dict[str, Any] | None:
    try:
        data = json.loads(locator_path(listen).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


async def request(control: str, message: dict[str, Any],
                  timeout: float = REQUEST_TIMEOUT) -> dict[str, Any]:
    """One request/response; ProxyGone when no proxy listens there any more."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(control), timeout)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise ProxyGone(control) from exc
    try:
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (ConnectionResetError, BrokenPipeError) as exc:  # it is exiting
        raise ProxyGone(control) from exc
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if not line:
        raise ProxyGone(control)
    answer = json.loads(line)
    if not answer.get("ok"):
        raise RuntimeError(str(answer.get("error", "the proxy refused the request")))
    return dict(answer)


class ControlServer:
    """Serves the control channel of one proxy and keeps its locator file."""

    def __init__(self, proxy: Proxy, control: Path, locator: Path | None) -> None:
        self.proxy, self.control, self.locator = proxy, control, locator
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        parent = self.control.parent
        created = not parent.exists()
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if created or parent == control_path("-").parent:
            # our own directory (the default sits in the shared temp dir) is private to this user;
            # a directory the user named (`--control /tmp/x.sock`) is theirs: its mode is kept
            os.chmod(parent, 0o700)
        with contextlib.suppress(FileNotFoundError):
            self.control.unlink()
        self._server = await asyncio.start_unix_server(self._client, str(self.control),
                                                       limit=MAX_LINE)
        if self.locator is not None:
            import psutil

            self.locator.parent.mkdir(parents=True, exist_ok=True)
            me = psutil.Process()
            tmp = self.locator.with_suffix(".tmp")
            tmp.write_text(json.dumps({"control": str(self.control), "pid": me.pid,
                                       "create_time": me.create_time(),
                                       "listen": self.proxy.address,
                                       "upstream": "{}:{}".format(*self.proxy.upstream),
                                       "protocol": self.proxy.protocol,
                                       "upstream_tls": self.proxy.upstream_ssl is not None}))
            tmp.replace(self.locator)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for path in (self.control, self.locator):
            if path is not None:
                with contextlib.suppress(OSError):
                    path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
            try:
                answer = await self.handle(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                answer = {"ok": False, "error": str(exc)}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, OSError, ValueError):
            pass
        finally:
            writer.close()

    async def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        op = message.get("op")
        if op == "ping":
            return {"ok": True, "pid": os.getpid(), **self.proxy.snapshot()}
        if op == "add":
            await self.proxy.add(parse(message["toxic"]))
            return {"ok": True}
        if op == "remove":
            return {"ok": True, "removed": await self.proxy.remove(str(message["id"]))}
        if op in ("list", "stats"):
            return {"ok": True, **self.proxy.snapshot()}
        return {"ok": False, "error": f"unknown op {op!r}"}


async def serve(proxy: Proxy, control: Path, locator: Path | None, until: float | None,
                stop: asyncio.Event, ready: bool = False) -> None:
    """Run a proxy with its control channel until `stop` is set or `until` (epoch) passes."""
    await proxy.start()
    channel = ControlServer(proxy, control, locator)
    await channel.start()
    if ready:
        sys.stdout.write(f"ready {proxy.address}\n")
        sys.stdout.flush()
    try:
        while not stop.is_set():
            await proxy.expire()
            if until is not None and time.time() >= until:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
    finally:
        await channel.stop()
        await proxy.stop()


async def _main(args: argparse.Namespace) -> int:
    try:
        proxy = Proxy(args.listen, args.upstream, protocol=args.protocol,
                      upstream_tls=args.upstream_tls)
    except ValueError as exc:
        sys.stdout.write(f"error {exc}\n")
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for text in args.toxic:
        await proxy.add(parse(json.loads(text)))
    try:
        await serve(proxy, Path(args.control), Path(args.locator) if args.locator else None,
                    args.until, stop, ready=True)
    except OSError as exc:
        sys.stdout.write(f"error cannot listen on {args.listen}: {exc.strerror or exc}\n")
        sys.stdout.flush()
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaos-proxy", description=__doc__)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--control", required=True, help="unix socket path")
    parser.add_argument("--protocol", default="tcp", choices=("tcp", "http"))
    parser.add_argument("--upstream-tls", action="store_true",
                        help="http: speak TLS to the upstream (certificate not verified)")
    parser.add_argument("--locator", help="locator file to write while running")
    parser.add_argument("--until", type=float, help="exit at this epoch time")
    parser.add_argument("--toxic", action="append", default=[], help="initial toxic (JSON)")
    return asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
