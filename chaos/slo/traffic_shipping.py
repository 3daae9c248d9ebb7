"""A traffic worker's side: its share of the schedule, shipped to the runner as it goes.

One loop for every worker, whatever carries its lines (chaos.slo.traffic_workers has the
protocol): a local process writes them to its stdout and reads `t0` from its stdin; a worker on
another host (`chaos traffic-worker`, chaos.slo.traffic_remote) uses its TCP connection. A
`Link` is that difference: how lines go out, how `t0` arrives (in this process's monotonic
clock), and how the worker learns that the runner is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import replace
from typing import Any, Protocol

from chaos.slo.buckets import Bucket
from chaos.slo.traffic import HttpTraffic
from chaos.slo.traffic_spec import TrafficSpec, traffic_from_spec

SHIP_EVERY = 0.1  # seconds between lines (chaos.slo.traffic_workers folds a line later)
LONGEST = 7 * 86400.0  # a worker's deadline when its order sets none


class Link(Protocol):
    """What carries a worker's lines to the runner, and the runner's word back."""

    async def send(self, line: bytes) -> None: ...

    async def start_time(self) -> float | None:
        """`t0` in time.monotonic(), or None: the runner went away before the start."""

    def watch(self, stop: asyncio.Event) -> None:
        """Set `stop` once the runner says stop or is gone."""


class _ShippingTraffic(HttpTraffic):
    """A worker's generator: what it records waits in `delta` for the next line."""

    def __init__(self, spec: TrafficSpec) -> None:
        super().__init__(spec)
        self.delta: dict[int, Bucket] = {}

    def record(self, due: float, lag: float, ok: bool, error: str,
               timed_out: bool = False) -> None:
        latency = max(1, int((time.monotonic() - due) * 1e6))
        starved = due in self._starved
        if starved:
            self._starved.discard(due)
        tick = self._tick(due)
        bucket = self.delta.get(tick)
        if bucket is None:
            bucket = self.delta[tick] = Bucket()
        bucket.requests += 1
        bucket.starved += starved
        bucket.latency.record_value(latency)
        bucket.lag.record_value(max(1, int(lag * 1e6)))
        if not ok:
            bucket.errors += 1
            bucket.timeouts += timed_out
            bucket.last_error = error

    def line(self) -> bytes:
        ticks = [[t, b.packed().as_json()] for t, b in sorted(self.delta.items())]
        self.delta = {}
        waiting = min([*self.in_flight(), self.next_due or self.t0]) - self.t0
        return (json.dumps({"ticks": ticks, "waiting": waiting, "sent": self.sent},
                           separators=(",", ":")) + "\n").encode()


async def generate(order: dict[str, Any], link: Link) -> None:
    """Send this worker's share of the schedule until the runner says stop, is gone, or the
    order's deadline (seconds from now) passes; ship a line every SHIP_EVERY."""
    share = order["share"]
    spec = traffic_from_spec(order["http"], order.get("profile"), order.get("mix") or ())
    spec = replace(spec, share=(int(share[0]), int(share[1])))
    deadline = time.monotonic() + float(order.get("deadline") or LONGEST)
    await link.send(b"ready\n")
    t0 = await link.start_time()
    if t0 is None:
        return
    traffic = _ShippingTraffic(spec)
    traffic.start()
    traffic.t0 = t0  # the runner's; the tasks have not run yet
    stop = asyncio.Event()
    link.watch(stop)
    while not stop.is_set() and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SHIP_EVERY)
        await link.send(traffic.line())
    await traffic.stop()
    await link.send(traffic.line())


class LocalLink:
    """A local worker's stdio: lines on stdout, `t0` on stdin; SIGTERM, stdin's EOF or a
    parent that is gone (checked every SHIP_EVERY) stop it."""

    def __init__(self) -> None:
        self.parent = os.getppid()
        self.out = sys.stdout.buffer

    async def send(self, line: bytes) -> None:
        self.out.write(line)
        self.out.flush()

    async def start_time(self) -> float | None:
        t0 = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        return float(t0) if t0.strip() else None

    def watch(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_reader(sys.stdin.fileno(), stop.set)  # EOF: the runner is gone
        self._orphan = asyncio.create_task(self._orphaned(stop))

    async def _orphaned(self, stop: asyncio.Event) -> None:
        while os.getppid() == self.parent:
            await asyncio.sleep(SHIP_EVERY)
        stop.set()


__all__ = ["Link", "LocalLink", "generate"]
