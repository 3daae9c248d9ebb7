"""Traffic workers on other hosts: `chaos traffic-worker --connect HOST:PORT` to a runner that
listens where `traffic.workers.listen` says (nowhere unless told).

Hosts do not share a monotonic clock, so `t0` cannot travel as one. After the worker proves it
knows the shared token, the runner measures the offset of the worker's wall clock from its own
NTP-style: PINGS exchanges, each timed by the runner (sent, answered) around the worker's
reading; the exchange with the shortest round trip wins, and half that round trip bounds the
error. A worker whose bound exceeds `max_clock_error` (5 ms by default) is refused, never let
into a run whose windows it would misplace. The runner then sends `t0` as its own wall-clock
time plus that worker's offset, which the worker turns into its own monotonic clock once.

The token never crosses the wire: each side sends a random challenge and proves the token by
an HMAC over both (compared in constant time), so the worker knows its runner too. The lines
after that (ticks, chaos.slo.traffic_workers) are neither encrypted nor signed: no TLS, use an
SSH tunnel or a private network (docs/experiment-format.md). A worker stops at the runner's
`stop`, when the connection closes, when it hears nothing for SILENCE (the runner sends
`alive` every HEARTBEAT), and at its own deadline: a killed runner never leaves it sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chaos.errors import ChaosError
from chaos.slo.buckets import Window
from chaos.slo.traffic_spec import TrafficSpec
from chaos.slo.traffic_workers import MAX_LINE, MergedTraffic

log = logging.getLogger(__name__)

PROTOCOL = 1
PINGS = 8
HANDSHAKE_WITHIN = 10.0  # seconds from connecting to being let in
HEARTBEAT = 1.0  # the runner's `alive` to every worker
SILENCE = 10.0  # a worker that hears nothing for this long stops
WORKER_CLOCK_SHIFT = "CHAOS_WORKER_CLOCK_SHIFT"  # test hook: seconds added to a worker's clock


@dataclass(frozen=True)
class RemoteWorkers:
    """`traffic.workers` when its workers connect from other hosts."""

    count: int
    host: str
    port: int
    token: str
    connect_within: float = 60.0
    max_clock_error: float = 0.005

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> RemoteWorkers:
        host, _, port = str(spec["listen"]).rpartition(":")
        return cls(int(spec["remote"]), host.strip("[]"), int(port), str(spec["token"]),
                   float(spec["connect_within"]), float(spec["max_clock_error"]))


@dataclass(frozen=True)
class ClockSample:
    """One ping: the worker's clock minus the runner's, and the round trip it was read in."""

    offset: float
    rtt: float

    @property
    def error(self) -> float:
        """The most the offset can be wrong by: the reading happened within the round trip."""
        return self.rtt / 2


class Refused(Exception):
    """A connection that does not become a worker of this run (the reason is logged)."""


def proof(token: str, role: str, first: str, second: str) -> str:
    message = f"{role}|{first}|{second}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def say(writer: asyncio.StreamWriter, message: Mapping[str, Any]) -> None:
    writer.write((json.dumps(message, separators=(",", ":")) + "\n").encode())


async def hear(reader: asyncio.StreamReader) -> dict[str, Any]:
    """The next message; Refused when the peer closed or sent something else."""
    try:
        line = await reader.readline()
        message = json.loads(line) if line else None
    except (ValueError, OSError) as exc:
        raise Refused(f"not the traffic-worker protocol ({exc})"[:120]) from None
    if message is None:
        raise Refused("the connection closed")
    if not isinstance(message, dict):
        raise Refused("not the traffic-worker protocol")
    return message


class RemoteWorkerTraffic(MergedTraffic):
    """The runner's side: listens, lets in `count` workers that know the token and whose clock
    is known well enough, and merges their lines as for local workers."""

    def __init__(self, spec: TrafficSpec, raw: dict[str, Any], remote: RemoteWorkers,
                 on_second: Callable[[int, Window], None] | None = None) -> None:
        super().__init__(spec, raw, remote.count, on_second)
        self.remote = remote
        self.clocks: dict[int, ClockSample] = {}  # per worker, the sample its t0 used
        self._links: dict[int, asyncio.StreamWriter] = {}
        self._server: asyncio.Server | None = None

    def _launch(self) -> list[asyncio.Task[None]]:
        self._bound: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        return [asyncio.create_task(self._serve(), name="traffic-listen")]

    async def _serve(self) -> None:
        where = f"{self.remote.host}:{self.remote.port}"
        try:
            self._server = await asyncio.start_server(
                self._accept, self.remote.host, self.remote.port, limit=MAX_LINE)
        except OSError as exc:
            self._bound.set_exception(ChaosError(
                f"cannot listen for traffic workers on {where}: {exc.strerror or exc}",
                hint="free the port or change traffic.workers.listen"))
            return
        self._bound.set_result(None)
        log.info("waiting for %d traffic worker(s) on %s", self.workers, where)
        while True:  # `alive`, so a worker whose runner vanished without a FIN stops
            await asyncio.sleep(HEARTBEAT)
            for writer in self._links.values():
                if not writer.is_closing():
                    say(writer, {"alive": 1})

    async def _gathered(self) -> None:
        await self._bound
        try:
            async with asyncio.timeout(self.remote.connect_within):
                await asyncio.gather(*self._started)
        except TimeoutError:
            raise ChaosError(
                f"{len(self._links)} of {self.workers} traffic workers connected to "
                f"{self.remote.host}:{self.remote.port} within "
                f"{self.remote.connect_within:g}s; nothing was injected",
                hint="start each on its host: `CHAOS_WORKER_TOKEN=... chaos traffic-worker "
                     "--connect RUNNER:PORT` (workers refused are logged, with why)") from None
        if self.failure:
            raise ChaosError(f"{self.failure}; nothing was injected")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        try:
            if len(self._links) >= self.workers or self._stopping:
                raise Refused(f"the run has its {self.workers} worker(s)")
            async with asyncio.timeout(HANDSHAKE_WITHIN):
                clock = await self._admit(reader, writer)
            if len(self._links) >= self.workers or self._stopping:
                raise Refused(f"the run has its {self.workers} worker(s)")
        except (Refused, TimeoutError, OSError) as exc:
            reason = str(exc) if isinstance(exc, Refused) else (
                f"no handshake within {HANDSHAKE_WITHIN:g}s" if isinstance(exc, TimeoutError)
                else f"connection failed: {exc}")
            log.warning("refused a traffic worker from %s: %s", where, reason)
            with contextlib.suppress(OSError):
                say(writer, {"refused": reason})
                writer.close()
            return
        k = len(self._links)
        self._links[k], self.clocks[k] = writer, clock
        log.info("traffic worker %d of %d from %s: clock offset %+.3f ms ± %.3f ms (best round "
                 "trip %.3f ms of %d pings)", k + 1, self.workers, where, clock.offset * 1e3,
                 clock.error * 1e3, clock.rtt * 1e3, PINGS)
        say(writer, {"order": self.order(k), "clock": {"offset": clock.offset,
                                                       "error": clock.error}})

        async def gone() -> str:
            return f"from {where} disconnected"

        self._tasks.append(asyncio.create_task(self._follow(k, reader, gone),
                                               name=f"traffic-worker-{k}"))

    async def _admit(self, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> ClockSample:
        """Mutual proof of the token, then the clock: the best of PINGS exchanges."""
        challenge = secrets.token_hex(16)
        say(writer, {"chaos": "traffic-runner", "protocol": PROTOCOL, "challenge": challenge})
        hello = await hear(reader)
        if hello.get("protocol") != PROTOCOL:
            raise Refused(f"protocol {hello.get('protocol')!r}, this runner speaks {PROTOCOL}: "
                          "run the same chaos version on both")
        theirs = str(hello.get("challenge", ""))
        expected = proof(self.remote.token, "worker", challenge, theirs)
        if len(theirs) < 32 or not hmac.compare_digest(
                str(hello.get("proof", "")).encode(), expected.encode()):
            raise Refused("wrong token")
        say(writer, {"welcome": proof(self.remote.token, "runner", theirs, challenge)})
        samples = []
        for i in range(PINGS):
            # the round trip on the monotonic clock: a wall-clock step must not shorten it
            wall, sent = time.time(), time.monotonic()
            say(writer, {"ping": i})
            pong = await hear(reader)
            rtt = time.monotonic() - sent
            at = pong.get("at")
            if pong.get("pong") != i or not isinstance(at, float) or not math.isfinite(at):
                raise Refused("not the traffic-worker protocol (bad pong)")
            samples.append(ClockSample(at - (wall + rtt / 2), rtt))
        best = min(samples, key=lambda s: s.rtt)
        if best.error > self.remote.max_clock_error:
            raise Refused(f"its clock offset is known to ±{best.error * 1e3:.1f} ms only (best "
                          f"round trip {best.rtt * 1e3:.1f} ms), over max_clock_error "
                          f"{self.remote.max_clock_error * 1e3:g} ms: run it nearer the runner")
        return best

    def _begin(self, k: int, t0: float) -> None:
        writer = self._links.get(k)
        if writer is not None and not writer.is_closing():
            wall = t0 - time.monotonic() + time.time()
            say(writer, {"t0": wall + self.clocks[k].offset})

    async def _end(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._links.values():
            if not writer.is_closing():
                say(writer, {"stop": 1})

    def _kill(self) -> None:
        for writer in self._links.values():
            writer.close()


# --- the worker's side


@dataclass(frozen=True)
class Joined:
    """What a worker learnt on joining a run: its order and the clock the runner measured."""

    order: dict[str, Any]
    offset: float
    error: float


async def join(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: str,
               wall: Callable[[], float]) -> Joined:
    """The worker's half of the handshake: prove the token, check the runner's proof, answer
    the pings with `wall()`, take the order. ChaosError when refused or not a runner."""
    try:
        greeting = await hear(reader)
        theirs = str(greeting.get("challenge", ""))
        if greeting.get("chaos") != "traffic-runner" or len(theirs) < 32:
            raise Refused(greeting.get("refused") or "not a chaos runner")
        mine = secrets.token_hex(16)
        say(writer, {"hello": "traffic-worker", "protocol": PROTOCOL, "challenge": mine,
                     "proof": proof(token, "worker", theirs, mine)})
        trusted = False
        while True:
            message = await hear(reader)
            if "refused" in message:
                raise Refused(str(message["refused"]))
            if "welcome" in message:
                trusted = hmac.compare_digest(str(message["welcome"]).encode(),
                                              proof(token, "runner", mine, theirs).encode())
            if not trusted:
                raise Refused("the runner did not prove it knows the token")
            if "ping" in message:
                say(writer, {"pong": message["ping"], "at": wall()})
            elif "order" in message:
                clock = message.get("clock") or {}
                return Joined(dict(message["order"]), float(clock.get("offset", 0.0)),
                              float(clock.get("error", 0.0)))
    except Refused as exc:
        raise ChaosError(f"the runner refused this worker: {exc}",
                         hint="check CHAOS_WORKER_TOKEN (the same on both sides) and that "
                              "--connect names the runner's traffic.workers.listen") from None


class RemoteLink:
    """A worker's TCP connection to its runner, as chaos.slo.traffic_shipping.Link."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 wall: Callable[[], float]) -> None:
        self.reader, self.writer, self.wall = reader, writer, wall
        self.stopped = asyncio.Event()  # the runner said stop, closed, or fell silent
        self.why = "the run ended"  # or how the runner went away

    async def send(self, line: bytes) -> None:
        if self.writer.is_closing():
            self.stopped.set()
            return
        self.writer.write(line)
        try:
            await self.writer.drain()
        except OSError as exc:
            self.why = f"the connection to the runner failed ({exc})"
            self.stopped.set()

    async def _next(self) -> dict[str, Any] | None:
        """The runner's next word other than `alive`; None once it is gone or said stop."""
        while True:
            try:
                message = await asyncio.wait_for(hear(self.reader), SILENCE)
            except Refused as exc:
                self.why = f"the runner went away ({exc})"
                return None
            except TimeoutError:
                self.why = f"heard nothing from the runner for {SILENCE:g}s"
                return None
            if "stop" in message:
                return None
            if "alive" not in message:
                return message

    async def start_time(self) -> float | None:
        message = await self._next()
        if message is None or not isinstance(message.get("t0"), float):
            return None
        return float(message["t0"]) - self.wall() + time.monotonic()

    def watch(self, stop: asyncio.Event) -> None:
        async def listening() -> None:
            while await self._next() is not None:
                pass
            stop.set()

        async def relaying() -> None:
            await self.stopped.wait()
            stop.set()

        self._tasks = [asyncio.create_task(listening()), asyncio.create_task(relaying())]


async def work_for(address: str, token: str, connect_within: float, longest: float,
                   said: Callable[[str], None]) -> str:
    """Connect to the runner at `address` (retrying for `connect_within`), join its run and send
    this worker's share until it ends (at most `longest` seconds); why it ended."""
    from chaos.slo.traffic_shipping import generate

    shift = float(os.environ.get(WORKER_CLOCK_SHIFT) or 0.0)

    def wall() -> float:
        return time.time() + shift

    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + connect_within
    while True:
        try:
            reader, writer = await asyncio.open_connection(host.strip("[]"), int(port),
                                                           limit=MAX_LINE)
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                raise ChaosError(f"cannot connect to the runner at {address}: {exc}",
                                 hint="start the run first (it listens while it waits for "
                                      "its workers), or raise --connect-within") from None
            await asyncio.sleep(0.5)
    try:
        try:
            async with asyncio.timeout(HANDSHAKE_WITHIN + PINGS):
                joined = await join(reader, writer, token, wall)
        except TimeoutError:
            raise ChaosError(f"the runner at {address} did not finish the handshake within "
                             f"{HANDSHAKE_WITHIN + PINGS:g}s") from None
        share = joined.order.get("share") or [0, 1]
        said(f"worker {int(share[0]) + 1} of {int(share[1])} of the run at {address}: clock "
             f"offset {joined.offset * 1e3:+.3f} ms ± {joined.error * 1e3:.3f} ms")
        link = RemoteLink(reader, writer, wall)
        started = time.monotonic()
        await generate({**joined.order, "deadline": longest}, link)
        if time.monotonic() - started >= longest:
            return f"--max-duration ({longest:g}s) passed"
        return link.why
    finally:
        writer.close()


__all__ = ["ClockSample", "RemoteWorkerTraffic", "RemoteWorkers", "proof", "work_for"]
