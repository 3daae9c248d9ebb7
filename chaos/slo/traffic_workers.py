"""Open-model traffic past one core: the schedule split across worker processes, merged exactly.

One event loop keeps its scheduler lag low up to some 20,000 req/s; `traffic.workers: N` runs N
generator processes (each its own loop, uvloop when installed). Worker k of N sends requests
k, k + N, k + 2N, ... of the one schedule (same `t0`), so their union is exactly the
single-process schedule. A worker says `ready` once it has started (Python and uvloop imported,
its loop running); when all have, the runner sends each its `t0` (`ready()`: the engine starts
the before window then). Every 100 ms each worker sends one JSON line: the requests recorded
since its last line, per 100 ms tick, as packed buckets (counts and HdrHistograms in their
compressed encoding, chaos.slo.buckets.PackedBucket), and `waiting`, when its oldest request not
answered yet (in flight or not sent yet) was due, in seconds after `t0`. The runner merges the
ticks into its own (histograms added, never percentiles averaged) and judges windows as for one
process; `settle(end)` waits until every worker's `waiting` is past `end`. A worker's scheduler
lag and connection starvation are in the merged histograms and counts, so they make a window
INVALID as before; a worker that dies or sends garbage makes every later window ERROR, never a
verdict on the service.

MergedTraffic is that runner side, whatever carries the lines: here, local processes (their
stdout; `t0` on their stdin, in the monotonic clock the machine shares); in
chaos.slo.traffic_remote, workers on other hosts over TCP (`t0` in their own clock). Local
workers end with the runner: SIGTERM (a last line, then exit), their stdin closing, a parent
that is gone (checked every 100 ms), or their deadline. The workers' side is
chaos.slo.traffic_shipping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from chaos.slo.buckets import Bucket, PackedBucket, Window
from chaos.slo.traffic import TICKS_PER_SECOND, HttpTraffic
from chaos.slo.traffic_spec import TrafficSpec

SHIP_EVERY = 0.1  # seconds between a worker's lines
READY_WITHIN = 60.0  # seconds for every worker to start (a loaded machine imports slowly)
STOP_GRACE = 5.0  # after SIGTERM, then SIGKILL
MAX_LINE = 16 * 1024 * 1024


class MergedTraffic(HttpTraffic):
    """The runner's side of any set of workers: merges their lines, answers windows.

    Subclasses start the workers (`_launch`), hand each its `t0` (`_begin`), end them
    (`_end`); each worker's lines go through `_follow`."""

    def __init__(self, spec: TrafficSpec, raw: dict[str, Any], workers: int,
                 on_second: Callable[[int, Window], None] | None = None) -> None:
        super().__init__(spec, on_second)
        self.workers = workers
        self._raw = raw  # traffic.http / profile / mix as JSON, what each worker rebuilds
        self._waiting: dict[int, float] = {}
        self._stopping = False
        self.failure = ""  # set once a worker failed: later windows are ERROR

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.t0 = math.inf  # until every worker is ready
        self._started: list[asyncio.Future[None]] = [
            self._loop.create_future() for _ in range(self.workers)]
        self._tasks = self._launch()

    def _launch(self) -> list[asyncio.Task[None]]:
        raise NotImplementedError

    def _begin(self, k: int, t0: float) -> None:
        """Tell worker k the schedule starts at `t0` (this process's monotonic clock)."""
        raise NotImplementedError

    async def _end(self) -> None:
        """Ask every worker to send its last line and stop."""
        raise NotImplementedError

    def _kill(self) -> None:
        """Workers still there after STOP_GRACE: end them without their last line."""

    async def _gathered(self) -> None:
        """Wait until every worker is ready or failed (a failure says why)."""
        try:
            async with asyncio.timeout(READY_WITHIN):
                await asyncio.gather(*self._started)
        except TimeoutError:
            self.failure = self.failure or (
                f"traffic workers did not start within {READY_WITHIN:.0f}s")

    async def ready(self) -> None:
        """Wait for every worker, then start the schedule now."""
        await self._gathered()
        self.t0 = time.monotonic() + 0.05
        self._waiting = dict.fromkeys(range(self.workers), self.t0)
        for k in range(self.workers):
            self._begin(k, self.t0)
        self._tasks.append(asyncio.create_task(self._folding(), name="traffic-fold"))

    def order(self, k: int) -> dict[str, Any]:
        """What worker k rebuilds its share of the schedule from."""
        share = math.ceil(self.connections / self.workers)
        return {**self._raw, "http": {**self._raw["http"], "connections": share},
                "share": [k, self.workers]}

    async def _follow(self, k: int, lines: asyncio.StreamReader,
                      gone: Callable[[], Awaitable[str]]) -> None:
        """Worker k's lines until it stops sending: `ready`, then ticks. `gone()` says how it
        ended, for when that was not the run's stop."""
        broken = ""
        try:
            if await lines.readline() == b"ready\n":
                self._started[k].set_result(None)
            async for line in lines:
                self._absorb(k, line)
        except (OSError, ValueError) as exc:  # reset, or a line past MAX_LINE
            broken = f": {exc}"
        finally:
            if not self._started[k].done():
                self._started[k].set_result(None)  # ready() goes on; the failure says why
            self._waiting.pop(k, None)
            why = await gone()
            if not self._stopping and not self.failure:
                self.failure = f"traffic worker {k + 1} of {self.workers} {why}{broken}"[:300]

    def _absorb(self, k: int, line: bytes) -> None:
        try:
            message = json.loads(line)
            ticks = [(int(t), PackedBucket.from_json(b)) for t, b in message["ticks"]]
            waiting = self.t0 + float(message["waiting"])
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
        if k in self._waiting:
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
        await self._end()
        readers = [t for t in self._tasks if t.get_name().startswith("traffic-worker")]
        if readers:  # each reads its worker's last line, then sees it end
            await asyncio.wait(readers, timeout=STOP_GRACE)
        self._kill()
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


class WorkerTraffic(MergedTraffic):
    """Workers as local processes: lines on their stdout, `t0` on their stdin."""

    def _launch(self) -> list[asyncio.Task[None]]:
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        return [asyncio.create_task(self._run(k), name=f"traffic-worker-{k}")
                for k in range(self.workers)]

    async def _run(self, k: int) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chaos.slo.traffic_workers", json.dumps(self.order(k)),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=MAX_LINE)
        self._procs[k] = proc
        assert proc.stdout is not None

        async def gone() -> str:
            return f"exited (code {await proc.wait()})"

        await self._follow(k, proc.stdout, gone)

    def _begin(self, k: int, t0: float) -> None:
        proc = self._procs.get(k)
        if proc is not None and proc.stdin is not None and proc.returncode is None:
            proc.stdin.write(f"{t0!r}\n".encode())

    async def _end(self) -> None:
        for proc in self._procs.values():
            if proc.stdin is not None:
                proc.stdin.close()  # a worker still waiting for t0 sees EOF and ends
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)

    def _kill(self) -> None:
        for proc in self._procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()


def main(argv: list[str]) -> int:
    from chaos.slo.traffic import loop_factory
    from chaos.slo.traffic_shipping import LocalLink, generate

    order = json.loads(argv[0])
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(generate(order, LocalLink()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


__all__ = ["MergedTraffic", "WorkerTraffic"]
