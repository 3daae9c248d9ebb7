"""Open-model HTTP traffic: requests leave on a schedule, whatever the service under test does.

A closed loop (send, wait, send) slows down when the service slows down and so hides the very
latency it should measure (coordinated omission). Here every request has an *intended* send time
from the rate schedule and its latency is measured from that time: a request that could not even
be sent because every connection was stuck still counts its wait. The generator's own lateness
(scheduler lag: when it got round to a request vs when it was due) is recorded separately; when
it cannot keep its schedule the measurement is INVALID, never a verdict on the service.

HTTP/1.1 keep-alive over asyncio transports (the layer under streams; TLS through `ssl`), a pool
of connections that grows while every open one is busy, up to `connections` (by default enough
for every request to wait its whole timeout: rate x timeout x 1.1 + 10, at most 10,000). A
request that had to wait longer than `max_lag` for a connection because the pool was at that
cap was delayed by the generator, not the service: its window is INVALID, saying to raise
`connections`. A request that misses its timeout (counted from its intended time), fails to
connect or gets a 5xx is an error.

Results are buckets by intended send time: 100 ms ticks (kept for the last minute, for guardrails
and recovery) folded into one bucket per second once all its requests are answered or timed out;
each bucket has the counts and HdrHistograms of latency and lag. Complete ticks and seconds
are packed (compressed histograms, chaos.slo.buckets.PackedBucket), so the last minute costs a
few hundred KiB and an hour-long run about a MiB more, not a GiB. A window merges buckets;
percentiles are never averaged. Requests still in flight are not in any bucket yet: `settle(end)`
waits for those due before `end` (at most the timeout), so a stall that ends after a window
still counts in the window it happened in.

The rate follows a schedule (chaos.slo.schedule: a constant rate with a ramp, stages, a spike)
and the requests may be a weighted `mix`: sent in a smooth weighted round robin (8:2 is
A A A A B A A A A B), so any stretch of the run has the declared proportions, not just the
whole of it on average.

What is sent is declared in chaos.slo.traffic_spec, how it goes on the wire in
chaos.slo.traffic_wire; this module schedules, pools and counts.
"""

from __future__ import annotations

import asyncio
import collections
import math
import ssl
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

from chaos.slo.buckets import Bucket, PackedBucket, Window
from chaos.slo.http_client import tls_context
from chaos.slo.schedule import RateSchedule
from chaos.slo.traffic_spec import (
    Request,
    TrafficSpec,
    connection_cap,
    fd_room,
    offset_of,
    request_bytes,
    traffic_from_spec,
    weighted_cycle,
)
from chaos.slo.traffic_wire import Connection
from chaos.units import format_duration

TICKS_PER_SECOND = 10
KEEP_TICKS = 60 * TICKS_PER_SECOND  # fine-grained history, for guardrails and recovery
MAX_SPAWN_PER_WAKE = 5000  # a hopelessly late generator still yields to the loop
WAKE_EVERY = 0.001  # the scheduler's granularity
MAX_IN_FLIGHT = 20000  # past this the schedule slips (and the lag shows it), memory does not


class HttpTraffic:
    """One open-model generator; `start()` then `stop()`, windows in between and after."""

    def __init__(self, spec: TrafficSpec,
                 on_second: Callable[[int, Window], None] | None = None) -> None:
        self.spec = spec
        self.on_second = on_second  # called once per completed second (journal series)
        # called once per completed tick with requests, before its second (a short run's
        # journal keeps them: drops drawn in the 100 ms they happened in)
        self.on_tick: Callable[[int, Window], None] | None = None
        parts = urlsplit(spec.url)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._tls else 80)
        mix = spec.mix or ((1, Request(spec.url, spec.method, spec.headers, spec.body)),)
        self._cycle = [(request_bytes(r), r.method == "HEAD") for r in weighted_cycle(mix)]
        self._next = 0
        self.schedule = spec.schedule or RateSchedule.constant(spec.rate, spec.ramp)
        self._ssl: ssl.SSLContext | None = None
        self.t0 = 0.0  # time.monotonic() of request 0
        self.sent = 0
        self.next_due = 0.0  # when the next request not sent yet is due
        self._next_n = 0
        self._offset: Callable[[int], float] = lambda n: math.inf
        self._held: tuple[float, RateSchedule] | None = None  # (since, schedule): follow()
        self._ticks: dict[int, Bucket | PackedBucket] = {}
        self._seconds: dict[int, Bucket | PackedBucket] = {}
        self._closed_until = 0  # seconds below this are folded
        self._forgotten_below = 0  # ticks below this were dropped (their seconds remain)
        # due, lag, and whether it was queued because the pool was at its cap
        self._pending: collections.deque[tuple[float, float, bool]] = collections.deque()
        self._starved: set[float] = set()  # due times delayed by the cap (see _unqueue)
        self.connections = connection_cap(spec)
        self._idle: list[Connection] = []
        self._busy: set[Connection] = set()
        self._opening = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def next_request(self) -> tuple[bytes, bool]:
        """The next request of the mix to send, and whether it is a HEAD."""
        self._next = (self._next + 1) % len(self._cycle)
        return self._cycle[self._next - 1]

    # --- lifecycle
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()  # times are time.monotonic(), like the engine's
        if self._tls:
            self._ssl = tls_context(self.spec.verify_tls)
        self.connections = fd_room(connection_cap(self.spec))
        self.t0 = time.monotonic()
        self._tasks = [asyncio.create_task(self._schedule(), name="traffic"),
                       asyncio.create_task(self._sweep(), name="traffic-timeouts")]

    async def ready(self) -> None:
        """Return once requests are being sent (at once here; worker processes take longer)."""

    async def _halt(self, tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Stop sending; requests in flight are abandoned (not counted)."""
        tasks, self._tasks = self._tasks, []
        await self._halt(tasks)
        self._pending.clear()
        self._starved.clear()
        for conn in [*self._busy, *self._idle]:
            conn.due = None
            if conn.transport is not None:
                conn.transport.abort()
        self._busy.clear()
        self._idle.clear()
        self._fold(self._tick(self.now()) + TICKS_PER_SECOND)  # the last, partial second

    async def drain(self, timeout: float) -> None:
        """Stop sending and wait (at most `timeout`) for the requests in flight to finish."""
        await self._halt(self._tasks[:1])  # the scheduler; timeouts are still swept
        deadline = time.monotonic() + timeout
        while self.in_flight() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await self.stop()

    def in_flight(self) -> list[float]:
        """Intended send times of the requests not answered yet."""
        return [d for d, _, _ in self._pending] + [c.due for c in self._busy
                                                   if c.due is not None]

    async def settle(self, end: float) -> None:
        """Wait until every request due before `end` is answered or timed out."""
        while any(due < end for due in self.in_flight()):
            if time.monotonic() > end + self.spec.timeout + 1.0:
                return  # the sweeper is late: do not wait for ever
            await asyncio.sleep(0.01)

    def now(self) -> float:
        return time.monotonic()

    def hold(self, rate: float) -> None:
        """From now on, send `rate` requests per second whatever the schedule said (a
        breaking-point search that found the limit steps back). The runner's own loop only."""
        self.follow(RateSchedule.constant(rate))

    def follow(self, schedule: RateSchedule) -> float:
        """From now on, follow `schedule` from its start (a second breaking-point search, with
        the faults held); returns that start, as an offset from `t0`. The runner's own loop
        only."""
        since, base = time.monotonic() - self.t0, self._next_n
        self._held = (since, schedule)
        self._offset = lambda n: since + schedule.offset_of(n - base)
        return since

    def rate_at(self, at: float) -> float:
        if self._held is not None and at - self.t0 >= self._held[0]:
            return self._held[1].rate_at(at - self.t0 - self._held[0])
        if self.spec.schedule is not None:
            return self.schedule.rate_at(at - self.t0)
        elapsed = at - self.t0
        if self.spec.ramp and elapsed < self.spec.ramp:
            return self.spec.rate * max(elapsed, 0.0) / self.spec.ramp
        return self.spec.rate

    # --- scheduling
    async def _schedule(self) -> None:
        rate, ramp = self.spec.rate, self.spec.ramp
        n, every = self.spec.share
        self._offset = (
            (lambda i: offset_of(i, rate, ramp)) if self.spec.schedule is None
            else self.spec.schedule.offset_of)
        while True:
            now = time.monotonic()
            spawned = 0
            room = min(MAX_SPAWN_PER_WAKE, MAX_IN_FLIGHT - len(self._pending))
            offset = self._offset  # hold() may have changed it
            due = self.t0 + offset(n)
            while due <= now and spawned < room:
                self._dispatch(due, now - due)
                n += every
                spawned += 1
                due = self.t0 + offset(n)
            self.sent, self.next_due, self._next_n = n // every, due, n
            final = self._tick(now - self.spec.timeout - 0.25)  # older ticks are complete
            if final // TICKS_PER_SECOND > self._closed_until:
                self._fold(final)
            # wake at most every millisecond: a wake per request would cost more CPU than the
            # request itself (and uvloop's timers have 1 ms resolution); the wait is lag
            await asyncio.sleep(min(1.0, max(WAKE_EVERY, due - time.monotonic())))

    def _dispatch(self, due: float, lag: float) -> None:
        if self._idle:
            conn = self._idle.pop()
            self._busy.add(conn)
            conn.send(due, lag)
            return
        at_cap = self._opening + len(self._busy) >= self.connections
        self._pending.append((due, lag, at_cap))
        if self._opening < len(self._pending) and not at_cap:
            self._opening += 1
            self._tasks.append(asyncio.create_task(self._connect()))

    async def _connect(self) -> None:
        assert self._loop is not None
        error, timed_out = "", False
        try:
            async with asyncio.timeout(self.spec.timeout):
                _, conn = await self._loop.create_connection(
                    lambda: Connection(self), self._host, self._port, ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None)
        except TimeoutError:
            error = f"connect: no answer within {format_duration(self.spec.timeout)}"
            timed_out = True
        except OSError as exc:
            error = f"connect: {exc}"[:200]
        finally:
            self._opening -= 1
            task = asyncio.current_task()
            if task in self._tasks:
                self._tasks.remove(task)
        if error:
            if self._pending:  # a connection error fails the request it was opened for
                due, lag = self._unqueue()
                self.record(due, lag, False, error, timed_out)
            return
        self._ready(conn)

    def _ready(self, conn: Connection) -> None:
        if self._pending:
            due, lag = self._unqueue()
            self._busy.add(conn)
            conn.send(due, lag)
        else:
            self._busy.discard(conn)
            self._idle.append(conn)

    def answered(self, conn: Connection, due: float, lag: float, status: int,
                 reusable: bool) -> None:
        self.record(due, lag, status < 500, f"HTTP {status}")
        if reusable:
            self._ready(conn)
        elif conn.transport is not None:
            conn.transport.close()

    def lost(self, conn: Connection) -> None:
        self._busy.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        if self._tasks and self._opening < len(self._pending) and (
                self._opening + len(self._busy) < self.connections):
            self._opening += 1  # requests are waiting and a slot is free again
            self._tasks.append(asyncio.create_task(self._connect()))

    async def _sweep(self) -> None:
        """Fail requests past their timeout, every 10 ms: cheaper than a timer per request."""
        timeout = self.spec.timeout
        while True:
            await asyncio.sleep(min(0.01, timeout / 10))
            limit = time.monotonic() - timeout
            message = f"no answer within {format_duration(timeout)}"
            while self._pending and self._pending[0][0] <= limit:
                due, lag = self._unqueue()
                self.record(due, lag, False, message, timed_out=True)
            for conn in [c for c in self._busy if c.due is not None and c.due <= limit]:
                conn.fail(message, timed_out=True)

    def _unqueue(self) -> tuple[float, float]:
        """The oldest waiting request leaves the queue (sent, failed or timed out); one that
        waited past `max_lag` because the pool was full was delayed by the generator."""
        due, lag, at_cap = self._pending.popleft()
        if at_cap and time.monotonic() - due - lag > self.spec.max_lag:
            self._starved.add(due)
        return due, lag

    def record(self, due: float, lag: float, ok: bool, error: str,
               timed_out: bool = False) -> None:
        latency = max(1, int((time.monotonic() - due) * 1e6))
        tick = self._tick(due)
        second = tick // TICKS_PER_SECOND
        stores: list[tuple[dict[int, Bucket | PackedBucket], int]] = [(self._ticks, tick)]
        if second < self._closed_until:  # later than its timeout: rare
            stores.append((self._seconds, second))
        starved = due in self._starved
        if starved:
            self._starved.discard(due)
        for store, key in stores:
            known = store.get(key)
            bucket = known.unpacked() if isinstance(known, PackedBucket) else known or Bucket()
            bucket.requests += 1
            bucket.starved += starved
            bucket.latency.record_value(latency)
            bucket.lag.record_value(max(1, int(lag * 1e6)))
            if not ok:
                bucket.errors += 1
                bucket.timeouts += timed_out
                bucket.last_error = error
            # a late answer for a packed bucket: rare, so packing it again costs nothing
            store[key] = bucket.packed() if isinstance(known, PackedBucket) else bucket

    # --- buckets and windows
    def _tick(self, at: float) -> int:
        return math.floor((at - self.t0) * TICKS_PER_SECOND)

    def _fold(self, current_tick: int) -> None:
        """Fold the ticks of every second before `current_tick`'s into that second's bucket (the
        caller knows they are complete); forget old ticks."""
        upto = current_tick // TICKS_PER_SECOND
        for second in range(self._closed_until, upto):
            total = Bucket()
            for tick in range(second * TICKS_PER_SECOND, (second + 1) * TICKS_PER_SECOND):
                known = self._ticks.get(tick)
                if known is not None:
                    total.merge(known)
                    if self.on_tick is not None:
                        self._tell_tick(tick, known)
                    if isinstance(known, Bucket):  # complete: kept for windows, packed
                        self._ticks[tick] = known.packed()
            self._seconds[second] = total.packed()
            if self.on_second is not None:
                self.on_second(second, self._window_of(total, 1.0, self.t0 + second + 1))
        self._closed_until = max(self._closed_until, upto)
        forget = min(current_tick - KEEP_TICKS, self._closed_until * TICKS_PER_SECOND)
        if forget > self._forgotten_below:
            for tick in [t for t in self._ticks if t < forget]:
                del self._ticks[tick]
            self._forgotten_below = forget

    def _tell_tick(self, tick: int, known: Bucket | PackedBucket) -> None:
        assert self.on_tick is not None
        bucket = Bucket()
        bucket.merge(known)
        self.on_tick(tick, self._window_of(bucket, 1 / TICKS_PER_SECOND,
                                           self.t0 + (tick + 1) / TICKS_PER_SECOND))

    def _window_of(self, bucket: Bucket, seconds: float, end: float) -> Window:
        return Window(bucket, seconds, self.rate_at(end), self.spec.max_lag,
                      timeout=self.spec.timeout, connections=self.connections)

    def window(self, start: float, end: float) -> Window:
        """The answered requests due in [start, end) (time.monotonic()), to 100 ms."""
        first = max(self._tick(start), 0)
        last = self._tick(end)  # exclusive
        total = Bucket()
        for part in self._parts(first, last):
            total.merge(part)
        return self._window_of(total, end - start, end)

    def _parts(self, first: int, last: int) -> Iterator[Bucket | PackedBucket]:
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


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (the `fast` extra), else None (stdlib)."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


__all__ = ["Bucket", "HttpTraffic", "Request", "TrafficSpec", "Window", "connection_cap",
           "loop_factory", "offset_of", "traffic_from_spec", "weighted_cycle"]
