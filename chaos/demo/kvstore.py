"""The bundled Redis client for the database-failover scenario: an HTTP key-value service that
finds the Redis primary through Sentinel, as an application in production would, so a game day
can kill the primary and watch what the clients of the database see.

    GET  /health      200 "ok" (never calls Redis)
    GET  /kv/KEY      the value from the primary, or from a replica while the primary is gone;
                      404 when absent, 503 when no Redis node answers
    POST /kv/KEY      writes the body to the primary: 200, or 503 while there is none
    GET  /failover    200 {"primary": "HOST:PORT", "failovers": [{"from", "to", "writes_failed_s"}]}
    GET  /metrics     Prometheus text: what this client saw of the database - the primary it
                      writes to (chaos_demo_kvstore_primary{address}), the failovers it observed
                      and the writes that failed (counters, present from the start at 0)

Nothing installed exports Redis or Sentinel state, and the client's view is the one that pages:
a failover the clients never noticed is not an incident, writes failing are.

Every call asks Sentinel for the primary's address (SENTINEL get-master-addr-by-name) unless
the last one answered, with a timeout of --timeout per Redis call; a write that fails marks the
time, and the first write that succeeds on a new primary records how long writes failed (also
printed to stdout, so the service log shows each failover).

    python -m chaos.demo.kvstore --port 18300 --sentinel 127.0.0.1:26379 --name primary

`python -m chaos.demo.kvstore sentinel --port 26379 --primary 127.0.0.1:6379` writes a Sentinel
configuration (Sentinel rewrites its file, so it cannot be a shipped one) once the primary has a
replica online, then becomes redis-sentinel (exec: the service's process is Sentinel itself).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sys
import tempfile
import time

from chaos.demo.serving import serve_until_signalled, sweep_stale_dirs

Reply = bytes | int | list["Reply"] | None


class RedisError(Exception):
    """An error reply (-READONLY, -ERR ...) or a node that does not answer."""


async def command(address: tuple[str, int], *args: str | bytes, timeout: float) -> Reply:
    async def exchange() -> Reply:
        reader, writer = await asyncio.open_connection(*address)
        try:
            parts = [a.encode() if isinstance(a, str) else a for a in args]
            writer.write(b"*%d\r\n" % len(parts)
                         + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
            await writer.drain()
            return await _reply(reader)
        finally:
            writer.close()
    try:
        return await asyncio.wait_for(exchange(), timeout)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
        raise RedisError(f"{address[0]}:{address[1]}: {type(exc).__name__}") from exc


async def _reply(reader: asyncio.StreamReader) -> Reply:
    line = (await reader.readuntil(b"\r\n"))[:-2]
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RedisError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if int(rest) < 0 else (await reader.readexactly(int(rest) + 2))[:-2]
    if kind == b"*":
        return None if int(rest) < 0 else [await _reply(reader) for _ in range(int(rest))]
    raise ValueError(f"unexpected reply {line[:40]!r}")


class Store:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sentinel = _address(args.sentinel)
        self.primary: tuple[str, int] | None = None
        self.failing_since: float | None = None
        self.failovers: list[dict[str, object]] = []
        self.last_primary: tuple[str, int] | None = None
        self.write_failures = 0

    async def discover(self) -> tuple[str, int]:
        reply = await command(self.sentinel, "SENTINEL", "get-master-addr-by-name",
                              self.args.name, timeout=self.args.timeout)
        if not isinstance(reply, list) or len(reply) != 2:
            raise RedisError(f"Sentinel does not know {self.args.name!r}")
        host, port = (r.decode() if isinstance(r, bytes) else str(r) for r in reply)
        return host, int(port)

    async def nodes(self) -> list[tuple[str, int]]:
        """The primary first, then the replicas Sentinel knows."""
        primary = self.primary or await self.discover()
        reply = await command(self.sentinel, "SENTINEL", "replicas", self.args.name,
                              timeout=self.args.timeout)
        replicas = []
        for fields in reply if isinstance(reply, list) else []:
            info = {k: v for k, v in zip(fields[::2], fields[1::2])
                    if isinstance(k, bytes) and isinstance(v, bytes)
                    } if isinstance(fields, list) else {}
            if b"ip" in info and b"port" in info:
                replicas.append((info[b"ip"].decode(), int(info[b"port"])))
        return [primary, *(r for r in replicas if r != primary)]

    async def write(self, key: str, value: bytes) -> tuple[int, bytes]:
        try:
            self.primary = self.primary or await self.discover()
            await command(self.primary, "SET", key, value, timeout=self.args.timeout)
        except RedisError as exc:
            self.primary = None  # ask Sentinel again next time
            self.write_failures += 1
            self.failing_since = self.failing_since or time.monotonic()
            return 503, json.dumps({"error": f"write failed: {exc}"}).encode()
        if self.last_primary is not None and self.primary != self.last_primary:
            failed = time.monotonic() - self.failing_since if self.failing_since else 0.0
            self.failovers.append({"from": "%s:%d" % self.last_primary,
                                   "to": "%s:%d" % self.primary,
                                   "writes_failed_s": round(failed, 3)})
            print(f"failover: primary {self.failovers[-1]['from']} -> "
                  f"{self.failovers[-1]['to']}, writes failed for {failed:.3f}s", flush=True)
        self.last_primary, self.failing_since = self.primary, None
        return 200, b'"ok"'

    async def read(self, key: str) -> tuple[int, bytes]:
        last = "no Redis node"
        try:
            nodes = await self.nodes()
        except RedisError as exc:
            nodes, last = [], str(exc)
        for node in nodes:
            try:
                value = await command(node, "GET", key, timeout=self.args.timeout)
            except RedisError as exc:
                last = str(exc)
                continue
            if value is None:
                return 404, b'{"error": "no such key"}'
            return 200, value if isinstance(value, bytes) else str(value).encode()
        return 503, json.dumps({"error": f"read failed: {last}"}).encode()

    def metrics(self) -> bytes:
        primary = "%s:%d" % self.last_primary if self.last_primary else ""
        return "".join(f"{line}\n" for line in (
            "# HELP chaos_demo_kvstore_primary The Redis primary this client last wrote to.",
            "# TYPE chaos_demo_kvstore_primary gauge",
            f'chaos_demo_kvstore_primary{{address="{primary}"}} 1',
            "# HELP chaos_demo_kvstore_failovers_total Writes that succeeded on a new primary.",
            "# TYPE chaos_demo_kvstore_failovers_total counter",
            f"chaos_demo_kvstore_failovers_total {len(self.failovers)}",
            "# HELP chaos_demo_kvstore_write_failures_total Writes that found no primary.",
            "# TYPE chaos_demo_kvstore_write_failures_total counter",
            f"chaos_demo_kvstore_write_failures_total {self.write_failures}")).encode()

    async def route(self, method: bytes, path: bytes, body: bytes) -> tuple[int, bytes]:
        if path == b"/health":
            return 200, b'"ok"'
        if path == b"/metrics":
            return 200, self.metrics()
        if path == b"/failover":
            primary = "%s:%d" % self.last_primary if self.last_primary else None
            return 200, json.dumps({"primary": primary, "failovers": self.failovers}).encode()
        if path.startswith(b"/kv/") and len(path) > 4:
            key = path[4:].decode(errors="replace")
            return await (self.write(key, body) if method in (b"POST", b"PUT")
                          else self.read(key))
        return 404, b'{"error": "not found"}'

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await reader.readline():
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip() or 0)
                body = await reader.readexactly(length) if length else b""
                parts = request.split()
                method, path = (parts[0], parts[1]) if len(parts) > 1 else (b"GET", b"/")
                status, answer = await self.route(method, path, body)
                kind = "text/plain; version=0.0.4" if path == b"/metrics" else "application/json"
                writer.write(f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                             f"Content-Type: {kind}\r\nContent-Length: {len(answer)}"
                             "\r\n\r\n".encode() + answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def serve(args: argparse.Namespace) -> None:
    store = Store(args)
    server = await asyncio.start_server(store.handle, args.host, args.port, reuse_address=True,
                                        backlog=512)
    print(f"chaos demo kvstore listening on http://{args.host}:{args.port}, primary "
          f"{args.name!r} from Sentinel {args.sentinel}", flush=True)
    await serve_until_signalled(server)


def sentinel(args: argparse.Namespace) -> int:
    """Wait for a replica to be online, write the configuration, exec redis-sentinel."""
    primary = _address(args.primary)
    deadline = time.monotonic() + args.wait
    while "connected_slaves:0" in (info := _info(primary)) or "connected_slaves" not in info:
        if time.monotonic() > deadline:
            print(f"no replica of {args.primary} online after {args.wait}s", file=sys.stderr)
            return 1
        time.sleep(0.1)
    program = shutil.which("redis-sentinel")
    if program is None:
        print("redis-sentinel not found: install the redis-sentinel package", file=sys.stderr)
        return 1
    sweep_stale_dirs("chaos-sentinel-", "sentinel.pid")
    directory = tempfile.mkdtemp(prefix="chaos-sentinel-")
    config = os.path.join(directory, "sentinel.conf")
    with open(config, "w", encoding="utf-8") as file:
        file.write(f"port {args.port}\nbind 127.0.0.1\ndir {directory}\n"
                   f"pidfile {directory}/sentinel.pid\n"
                   f"sentinel monitor {args.name} {primary[0]} {primary[1]} 1\n"
                   f"sentinel down-after-milliseconds {args.name} {args.down_after}\n"
                   f"sentinel failover-timeout {args.name} {args.failover_timeout}\n"
                   f"sentinel parallel-syncs {args.name} 1\n")
    sys.stdout.flush()
    os.execv(program, [program, config])


def _info(address: tuple[str, int]) -> str:
    try:
        with socket.create_connection(address, timeout=2) as sock:
            sock.sendall(b"*2\r\n$4\r\nINFO\r\n$11\r\nreplication\r\n")
            sock.settimeout(2)
            return sock.recv(65536).decode(errors="replace")
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sentinel"]:
        parser = argparse.ArgumentParser(prog="python -m chaos.demo.kvstore sentinel")
        parser.add_argument("--port", type=int, default=26379)
        parser.add_argument("--primary", required=True, help="HOST:PORT of the Redis primary")
        parser.add_argument("--name", default="primary", help="the name Sentinel monitors")
        parser.add_argument("--down-after", type=int, default=1000, help="milliseconds")
        parser.add_argument("--failover-timeout", type=int, default=5000, help="milliseconds")
        parser.add_argument("--wait", type=float, default=20.0,
                            help="seconds to wait for a replica to be online")
        return sentinel(parser.parse_args(argv[1:]))
    parser = argparse.ArgumentParser(prog="python -m chaos.demo.kvstore", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18300)
    parser.add_argument("--sentinel", required=True, help="HOST:PORT of a Sentinel")
    parser.add_argument("--name", default="primary", help="the name Sentinel monitors")
    parser.add_argument("--timeout", type=float, default=0.5, help="seconds per Redis call")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
