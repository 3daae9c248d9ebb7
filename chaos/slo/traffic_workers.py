"""Open-model traffic past one core: the schedule split across worker processes, merged exactly.

One event loop keeps its scheduler lag low up to some 20,000 req/s; `traffic.workers: N` runs N
generator processes (each its own loop, uvloop when installed). Worker k of N sends requests
k, k + N, k + 2N, ... of the one schedule (same `t0`, the machine's monotonic clock), so their
union is exactly the single-process schedule. A worker says `ready` once it has started (Python
and uvloop imported, its loop running); when all have, the runner sends them `t0` on their
stdin (`ready()`: the engine starts the before window then). Every 100 ms each worker writes
one JSON line to its stdout: the requests recorded since its last line, per 100 ms tick, as
packed buckets (counts and HdrHistograms in their compressed encoding,
chaos.slo.buckets.PackedBucket), and `waiting`, the intended send time of its oldest request
not answered yet (in flight or not sent yet). The runner merges the ticks into its own
(histograms added, never percentiles averaged) and judges windows as for one process;
`settle(end)` waits until every worker's `waiting` is past `end`. A worker's scheduler lag and
connection starvation are in the merged histograms and counts, so they make a window INVALID
as before; a worker that dies or sends garbage makes every later window ERROR, never a verdict
on the service.

Workers end with the runner: SIGTERM (a last line, then exit), their stdin closing or a parent
that is gone (checked every 100 ms), or their deadline. Local processes only: `t0` is shared
through the monotonic clock, which other hosts do not share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chaos.slo.buckets import Bucket, PackedBucket, Window
from chaos.slo.traffic import TICKS_PER_SECOND, HttpTraffic
from chaos.slo.traffic_spec import TrafficSpec, traffic_from_spec

SHIP_EVERY = 0.1  # seconds between a worker's lines
READY_WITHIN = 60.0  # seconds for every worker to start (a loaded machine imports slowly)
STOP_GRACE = 5.0  # after SIGTERM, then SIGKILL
MAX_LINE = 16 * 1024 * 1024


class WorkerTraffic(HttpTraffic):
    """The runner's side: starts the workers, merges what they send, answers windows."""

    def __init__(self, spec: TrafficSpec, raw: dict[str, Any], workers: int,
                 on_second: Callable[[int, Window], None] | None = None) -> None:
        super().__init__(spec, on_second)
        self.workers = workers
        self._raw = raw  # traffic.http / profile / mix as JSON, what each worker rebuilds
        self._procs: list[asyncio.subprocess.Process] = []
        self._waiting: dict[int, float] = {}
        self._stopping = False
        self.failure = ""  # set once a worker failed: later windows are ERROR

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.t0 = math.inf  # until every worker is ready
        self._started: list[asyncio.Future[None]] = [
            self._loop.create_future() for _ in range(self.workers)]
        self._tasks = [asyncio.create_task(self._run(k), name=f"traffic-worker-{k}")
                       for k in range(self.workers)]

    async def ready(self) -> None:
        """Wait for every worker, then start the schedule now."""
        try:
            async with asyncio.timeout(READY_WITHIN):
                await asyncio.gather(*self._started)
        except TimeoutError:
            self.failure = self.failure or (
                f"traffic workers did not start within {READY_WITHIN:.0f}s")
        self.t0 = time.monotonic() + 0.05
        self._waiting = dict.fromkeys(range(self.workers), self.t0)
        for proc in self._procs:
            if proc.stdin is not None and proc.returncode is None:
                proc.stdin.write(f"{self.t0!r}\n".encode())
        self._tasks.append(asyncio.create_task(self._folding(), name="traffic-fold"))

    async def _run(self, k: int) -> None:
        share = math.ceil(self.connections / self.workers)
        http = {**self._raw["http"], "connections": share}
        order = json.dumps({**self._raw, "http": http, "share": [k, self.workers],
                            "t0": self.t0})
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chaos.slo.traffic_workers", order,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=MAX_LINE)
        self._procs.append(proc)
        assert proc.stdout is not None
        try:
            if await proc.stdout.readline() == b"ready\n":
                self._started[k].set_result(None)
            async for line in proc.stdout:
                self._absorb(k, line)
        finally:
            code = await proc.wait()
            if not self._started[k].done():
                self._started[k].set_result(None)  # ready() goes on; the failure says why
            self._waiting.pop(k, None)
            if not self._stopping and not self.failure:
                self.failure = f"traffic worker {k + 1} of {self.workers} exited (code {code})"

    def _absorb(self, k: int, line: bytes) -> None:
        try:
            message = json.loads(line)
            ticks = [(int(t), PackedBucket.from_json(b)) for t, b in message["ticks"]]
            waiting = float(message["waiting"])
        except (ValueError, KeyError, TypeError) as exc:
            self.failure = self.failure or (
                f"traffic worker {k + 1} of {self.workers} sent a bad line: {exc}"[:200])
            return
        for tick, packed in ticks:
            stores: list[tuple[dict[int, Bucket | PackedBucket], int]] = [(self._ticks, tick)]
            second = tick // TICKS_PER_SECOND
            if second < self._closed_until:  # later than its fold: rare
                stores.append((self._seconds, second))
            for store, key in stores:
                known = store.get(key)
                bucket = known.unpacked() if isinstance(known, PackedBucket) else (
                    known or Bucket())
                bucket.merge(packed)
                store[key] = bucket.packed() if isinstance(known, PackedBucket) else bucket
        self._waiting[k] = waiting

    async def _folding(self) -> None:
        """Fold complete seconds, as the one-process scheduler does (a line later)."""
        while True:
            await asyncio.sleep(SHIP_EVERY)
            final = self._tick(time.monotonic() - self.spec.timeout - 0.25 - 3 * SHIP_EVERY)
            if final // TICKS_PER_SECOND > self._closed_until:
                self._fold(final)

    def in_flight(self) -> list[float]:
        return list(self._waiting.values())

    async def stop(self) -> None:
        self._stopping = True
        for proc in self._procs:
            if proc.stdin is not None:
                proc.stdin.close()  # a worker still waiting for t0 sees EOF and ends
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        readers = [t for t in self._tasks if t.get_name().startswith("traffic-worker")]
        if readers:  # each reads its worker's last line, then sees it exit
            await asyncio.wait(readers, timeout=STOP_GRACE)
        for proc in self._procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        tasks, self._tasks = self._tasks, []
        await self._halt(tasks)
        self._waiting.clear()
        if not math.isinf(self.t0):  # the schedule started
            self._fold(self._tick(self.now()) + TICKS_PER_SECOND)

    async def drain(self, timeout: float) -> None:
        end = self.now()
        deadline = end + timeout
        while any(due < end for due in self.in_flight()) and self.now() < deadline:
            await asyncio.sleep(0.01)
        await self.stop()

    def _window_of(self, bucket: Bucket, seconds: float, end: float) -> Window:
        window = super()._window_of(bucket, seconds, end)
        window.error = self.failure
        return window


# --- the worker's side


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
        waiting = min([*self.in_flight(), self.next_due or self.t0])
        return (json.dumps({"ticks": ticks, "waiting": waiting, "sent": self.sent},
                           separators=(",", ":")) + "\n").encode()


async def _work(order: dict[str, Any]) -> None:
    share = order["share"]
    spec = traffic_from_spec(order["http"], order.get("profile"), order.get("mix") or ())
    spec = replace(spec, share=(int(share[0]), int(share[1])))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    parent, out = os.getppid(), sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    t0 = await loop.run_in_executor(None, sys.stdin.readline)
    if not t0.strip():
        return  # the runner went away before the start
    traffic = _ShippingTraffic(spec)
    traffic.start()
    traffic.t0 = float(t0)  # the runner's; the tasks have not run yet
    loop.add_reader(sys.stdin.fileno(), stop.set)  # EOF: the runner is gone
    deadline = time.monotonic() + float(order.get("deadline") or 7 * 86400)
    while not stop.is_set() and os.getppid() == parent and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SHIP_EVERY)
        out.write(traffic.line())
        out.flush()
    await traffic.stop()
    out.write(traffic.line())
    out.flush()


def main(argv: list[str]) -> int:
    from chaos.slo.traffic import loop_factory

    order = json.loads(argv[0])
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(_work(order))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


__all__ = ["WorkerTraffic"]
