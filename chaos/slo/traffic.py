"""Open-model HTTP traffic: requests leave on a schedule, whatever the service under test does.

A closed loop (send, wait, send) slows down when the service slows down and so hides the very
latency it should measure (coordinated omission). Here every request has an *intended* send time
from the rate schedule and its latency is measured from that time: a request that could not even
be sent because every connection was stuck still counts its wait. The generator's own lateness
(scheduler lag: when it got round to a request vs when it was due) is recorded separately; when
it cannot keep its schedule the measurement is INVALID, never a verdict on the service.

HTTP/1.1 keep-alive over asyncio streams (TLS through `ssl`), a pool of connections that grows
up to `connections` while every open one is busy. A request that misses its timeout (counted from
its intended time), fails to connect or gets a 5xx is an error.

Results are buckets by completion time: 100 ms ticks (kept for the last minute, for guardrails
and recovery) folded into one bucket per second; each bucket has the counts and HdrHistograms of
latency and lag. A window merges buckets; percentiles are never averaged.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hdrh.histogram import HdrHistogram

from chaos.errors import ProbeError
from chaos.units import format_duration

TICKS_PER_SECOND = 10
KEEP_TICKS = 60 * TICKS_PER_SECOND  # fine-grained history, for guardrails and recovery
MAX_SPAWN_PER_WAKE = 5000  # a hopelessly late generator still yields to the loop
_LOWEST_US, _HIGHEST_US, _DIGITS = 1, 3_600_000_000, 2


def new_histogram() -> HdrHistogram:
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)


@dataclass(frozen=True)
class TrafficSpec:
    url: str
    rate: float  # requests per second, once ramped up
    ramp: float = 0.0  # seconds to rise linearly from 0 to `rate`
    timeout: float = 2.0
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    connections: int = 256
    verify_tls: bool = True
    max_lag: float = 0.025  # p99 scheduler lag above this makes a window INVALID


def offset_of(n: int, rate: float, ramp: float) -> float:
    """Seconds after the start at which request `n` (from 0) is due: a linear ramp from 0 to
    `rate` over `ramp` seconds, then constant. Exact, so no drift accumulates."""
    in_ramp = rate * ramp / 2
    if n < in_ramp:
        return math.sqrt(2 * ramp * n / rate)
    return ramp + (n - in_ramp) / rate


class Bucket:
    """Counts and histograms of the requests that completed in one tick or second."""

    __slots__ = ("requests", "errors", "latency", "lag", "last_error")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latency = new_histogram()  # microseconds from the intended send time
        self.lag = new_histogram()  # microseconds between intended and actual start
        self.last_error = ""

    def merge(self, other: Bucket) -> None:
        self.requests += other.requests
        self.errors += other.errors
        if other.requests:
            self.latency.add(other.latency)
            self.lag.add(other.lag)
        self.last_error = other.last_error or self.last_error


@dataclass
class Window:
    """The merged buckets of a time range; what checks judge (chaos.slo.checks.Evidence)."""

    bucket: Bucket
    seconds: float
    rate: float  # the intended rate at the end of the window
    max_lag: float
    source: str = "traffic"
    error: str = ""

    @property
    def events(self) -> int:
        return self.bucket.requests

    @property
    def errors(self) -> int:
        return self.bucket.errors

    @property
    def invalid(self) -> str:
        """Why the window cannot be judged, or ""."""
        lag = self.lag_quantile(99)
        if lag is not None and lag > self.max_lag:
            return (f"generator lagged: p99 lag {lag * 1000:.0f} ms at {self.rate:,.0f} req/s "
                    f"(limit {format_duration(self.max_lag)})")
        return ""

    @property
    def detail(self) -> str:
        return self.bucket.last_error

    def quantile(self, q: float) -> float | None:
        if not self.bucket.requests:
            return None
        return float(self.bucket.latency.get_value_at_percentile(q)) / 1e6

    def lag_quantile(self, q: float) -> float | None:
        if not self.bucket.lag.total_count:
            return None
        return float(self.bucket.lag.get_value_at_percentile(q)) / 1e6

    def fraction_at_most(self, seconds: float) -> float | None:
        hist = self.bucket.latency
        if not hist.total_count:
            return None
        limit = seconds * 1e6
        below = 0
        for item in hist.get_recorded_iterator():
            if item.value_iterated_to > limit and not hist.values_are_equivalent(
                    item.value_iterated_to, int(limit)):
                break
            below += item.count_at_value_iterated_to
        return below / hist.total_count


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


class HttpTraffic:
    """One open-model generator; `start()` then `stop()`, windows in between and after."""

    def __init__(self, spec: TrafficSpec,
                 on_second: Callable[[int, Window], None] | None = None) -> None:
        self.spec = spec
        self.on_second = on_second  # called once per completed second (journal series)
        parts = urlsplit(spec.url)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._tls else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = [f"{spec.method} {target} HTTP/1.1", f"Host: {parts.netloc}",
                "User-Agent: chaos-traffic"]
        names = {k.lower() for k, _ in spec.headers}
        head += [f"{k}: {v}" for k, v in spec.headers]
        if spec.body or spec.method in ("POST", "PUT", "PATCH"):
            if "content-length" not in names:
                head.append(f"Content-Length: {len(spec.body)}")
        self._request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + spec.body
        self._head_only = spec.method == "HEAD"
        self._ssl: ssl.SSLContext | None = None
        self.t0 = 0.0  # loop time of request 0
        self.sent = 0
        self._ticks: dict[int, Bucket] = {}
        self._seconds: dict[int, Bucket] = {}
        self._closed_until = 0  # seconds below this are folded
        self._forgotten_below = 0  # ticks below this were dropped (their seconds remain)
        self._idle: list[_Conn] = []
        self._waiters: list[asyncio.Future[_Conn | None]] = []
        self._open = 0
        self._inflight: set[asyncio.Task[None]] = set()
        self._scheduler: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._tls:
            self._ssl = ssl.create_default_context()
            if not self.spec.verify_tls:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        self.t0 = self._loop.time()
        self._scheduler = asyncio.create_task(self._schedule(), name="traffic")

    async def stop(self) -> None:
        """Stop sending; requests in flight are abandoned (not counted)."""
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.gather(self._scheduler, return_exceptions=True)
            self._scheduler = None
        tasks = list(self._inflight)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in self._idle:
            conn.writer.close()
        self._idle.clear()
        self._fold(self._tick(self.now()) + 2 * TICKS_PER_SECOND)

    async def drain(self, timeout: float) -> None:
        """Stop sending and wait (at most `timeout`) for the requests in flight to finish."""
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.gather(self._scheduler, return_exceptions=True)
            self._scheduler = None
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=timeout)
        await self.stop()

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def rate_at(self, at: float) -> float:
        elapsed = at - self.t0
        if self.spec.ramp and elapsed < self.spec.ramp:
            return self.spec.rate * max(elapsed, 0.0) / self.spec.ramp
        return self.spec.rate

    # --- scheduling
    async def _schedule(self) -> None:
        loop = self._loop
        assert loop is not None
        rate, ramp, n = self.spec.rate, self.spec.ramp, 0
        while True:
            now = loop.time()
            spawned = 0
            due = self.t0 + offset_of(n, rate, ramp)
            while due <= now and spawned < MAX_SPAWN_PER_WAKE:
                task = loop.create_task(self._one(due))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                n += 1
                spawned += 1
                due = self.t0 + offset_of(n, rate, ramp)
            self.sent = n
            tick = self._tick(now)
            if tick // TICKS_PER_SECOND > self._closed_until:
                self._fold(tick)
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def _one(self, due: float) -> None:
        loop = self._loop
        assert loop is not None
        lag = loop.time() - due
        ok, error = False, ""
        try:
            async with asyncio.timeout_at(due + self.spec.timeout):
                status = await self._exchange()
            ok = status < 500
            if not ok:
                error = f"HTTP {status}"
        except TimeoutError:
            error = f"no answer within {format_duration(self.spec.timeout)}"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        done = loop.time()
        bucket = self._bucket(done)
        bucket.requests += 1
        bucket.latency.record_value(max(1, int((done - due) * 1e6)))
        bucket.lag.record_value(max(1, int(lag * 1e6)))
        if not ok:
            bucket.errors += 1
            bucket.last_error = error

    # --- connections
    async def _acquire(self) -> _Conn:
        if self._idle:
            return self._idle.pop()
        if self._open >= self.spec.connections:
            assert self._loop is not None
            waiter: asyncio.Future[_Conn | None] = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                conn = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._hand_back(waiter.result())
                else:
                    self._waiters.remove(waiter)
                raise
            if conn is not None:
                return conn
        self._open += 1
        try:
            reader, writer = await asyncio.open_connection(
                self._host, self._port, ssl=self._ssl,
                server_hostname=self._host if self._ssl else None)
        except BaseException:
            self._hand_back(None)
            raise
        return _Conn(reader, writer)

    def _hand_back(self, conn: _Conn | None) -> None:
        """A connection is free again (or, with None, one was closed and a slot is free)."""
        if conn is None:
            self._open -= 1
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            self._idle.append(conn)

    async def _exchange(self) -> int:
        conn = await self._acquire()
        try:
            conn.writer.write(self._request)
            if conn.writer.transport.get_write_buffer_size() > 65536:
                await conn.writer.drain()
            status, reusable = await self._response(conn.reader)
        except BaseException:
            conn.writer.close()
            self._hand_back(None)
            raise
        if reusable:
            self._hand_back(conn)
        else:
            conn.writer.close()
            self._hand_back(None)
        return status

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) < 12 or not head.startswith(b"HTTP/1."):
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
        if self._head_only or status in (204, 304) or 100 <= status < 200:
            return status, reusable
        if chunked:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length is not None:
            await reader.readexactly(length)
        else:
            await reader.read()  # until the server closes
            reusable = False
        return status, reusable

    # --- buckets and windows
    def _tick(self, at: float) -> int:
        return math.floor((at - self.t0) * TICKS_PER_SECOND)

    def _bucket(self, at: float) -> Bucket:
        tick = self._tick(at)
        bucket = self._ticks.get(tick)
        if bucket is None:
            bucket = self._ticks[tick] = Bucket()
        return bucket

    def _fold(self, current_tick: int) -> None:
        """Fold the ticks of every second that has ended into that second's bucket (completion
        time only moves forward, so an ended second is final); forget old ticks."""
        upto = current_tick // TICKS_PER_SECOND
        for second in range(self._closed_until, upto):
            total = Bucket()
            for tick in range(second * TICKS_PER_SECOND, (second + 1) * TICKS_PER_SECOND):
                if tick in self._ticks:
                    total.merge(self._ticks[tick])
            self._seconds[second] = total
            if self.on_second is not None:
                self.on_second(second, self._window_of(total, 1.0, self.t0 + second + 1))
        self._closed_until = max(self._closed_until, upto)
        forget = min(current_tick - KEEP_TICKS, self._closed_until * TICKS_PER_SECOND)
        if forget > self._forgotten_below:
            for tick in [t for t in self._ticks if t < forget]:
                del self._ticks[tick]
            self._forgotten_below = forget

    def _window_of(self, bucket: Bucket, seconds: float, end: float) -> Window:
        return Window(bucket, seconds, self.rate_at(end), self.spec.max_lag)

    def window(self, start: float, end: float) -> Window:
        """What completed in [start, end) (loop/monotonic time), to 100 ms."""
        first = max(self._tick(start), 0)
        last = self._tick(end)  # exclusive
        total = Bucket()
        for part in self._parts(first, last):
            total.merge(part)
        return self._window_of(total, end - start, end)

    def _parts(self, first: int, last: int) -> Iterator[Bucket]:
        seconds: set[int] = set()
        for tick in range(first, last):
            if tick >= self._forgotten_below:
                if tick in self._ticks:
                    yield self._ticks[tick]
                continue
            second = tick // TICKS_PER_SECOND  # only its whole second is left
            if second not in seconds and second in self._seconds:
                seconds.add(second)
                yield self._seconds[second]

    def total(self) -> Window:
        total = Bucket()
        for bucket in self._seconds.values():
            total.merge(bucket)
        for tick, bucket in self._ticks.items():
            if tick // TICKS_PER_SECOND >= self._closed_until:
                total.merge(bucket)
        return self._window_of(total, self.now() - self.t0, self.now())


def traffic_from_spec(spec: Any) -> TrafficSpec:
    """The model's frozen `traffic.http` mapping -> TrafficSpec."""
    if spec.get("rate") is None or spec.get("url") is None:
        raise ProbeError("traffic.http needs url and rate")
    body = spec.get("body") or ""
    return TrafficSpec(
        url=spec["url"], rate=float(spec["rate"]), ramp=float(spec.get("ramp") or 0.0),
        timeout=float(spec.get("timeout") or 2.0), method=spec.get("method") or "GET",
        headers=tuple((str(k), str(v)) for k, v in (spec.get("headers") or {}).items()),
        body=body.encode(), connections=int(spec.get("connections") or 256),
        verify_tls=bool(spec.get("verify_tls", True)),
        max_lag=float(spec.get("max_lag") or 0.025))


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (the `fast` extra), else None (stdlib)."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


__all__ = ["Bucket", "HttpTraffic", "TrafficSpec", "Window", "loop_factory", "offset_of",
           "traffic_from_spec", "field"]
