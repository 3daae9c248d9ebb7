"""Runs probes on a fixed schedule and keeps their samples, so phases are just time ranges.

Probes are sampled open-loop, like the traffic generator sends requests: each probe fires every
`every` whether or not its earlier samples answered, and each sample is timed from its intended
send time. A closed loop (ask, wait for the answer, ask again) takes 3 samples of a service frozen
for 3 s instead of 12, and so hides the very outage a guardrail is there to catch (coordinated
omission). Each probe has its own schedule: a slow probe never delays another.

In-flight samples per probe are bounded (`in_flight_bound`: what a probe answering only at its
timeout keeps in flight, plus two). A sample that cannot be sent because the bound is reached is
recorded as failed and timed out (detail `not sent: ...`): it never counts towards a PASS.
Samples go to a callback as they are answered, which is how guardrails are evaluated every round.
Schedules, timeouts and latencies are read from the `clock` given (chaos.clock), so a run on a
manual clock samples in milliseconds what would take minutes.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Collection, Sequence

from chaos.clock import SYSTEM_CLOCK, Clock
from chaos.errors import ChaosError
from chaos.slo.checks import Check, Sample
from chaos.slo.probes import Probe

SETTLE_MARGIN = 1.0  # past a probe's timeout, settle() stops waiting for a stuck cancellation


def in_flight_bound(probe: Probe, every: float) -> int:
    """Samples of `probe` that may be unanswered at once: a probe answering only at its timeout
    keeps ceil(timeout / every) in flight; two more absorb a slow cancellation (an exec probe
    reaping its command)."""
    return math.ceil(probe.timeout / every) + 2


class Sampler:
    def __init__(self, probes: Sequence[Probe], on_sample: Callable[[Sample], None],
                 on_error: Callable[[ChaosError], None], *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.probes = list(probes)
        self.clock = clock
        for kind in {p.kind: p.declared for p in self.probes}.values():
            if kind.prepare is not None:
                kind.prepare()  # before the first timed sample (chaos.slo.probe_kinds)
        self.samples: list[Sample] = []  # in the order they were answered
        self.every = 0.5
        self._on_sample = on_sample
        self._on_error = on_error
        self._tasks: dict[str, asyncio.Task[None]] = {}  # one schedule per probe
        # sample -> (probe, intended send time)
        self._in_flight: dict[asyncio.Task[None], tuple[str, float]] = {}

    def start(self, every: float) -> None:
        self.every = every
        if not self._tasks:
            self._tasks = {p.name: asyncio.create_task(self._loop(p), name=f"probe:{p.name}")
                           for p in self.probes}

    async def _loop(self, probe: Probe) -> None:
        mine: set[asyncio.Task[None]] = set()
        next_at = self.clock.monotonic()
        while True:
            delay = next_at - self.clock.monotonic()
            if delay > 0:
                await self.clock.sleep(delay)
            bound = in_flight_bound(probe, self.every)
            if len(mine) >= bound:
                self._record(Sample(probe.name, next_at, False, probe.timeout,
                                    f"not sent: {len(mine)} earlier samples still unanswered "
                                    f"(in-flight limit {bound})", timed_out=True))
            else:
                task = asyncio.create_task(self._one(probe, next_at),
                                           name=f"probe:{probe.name}:sample")
                mine.add(task)
                self._in_flight[task] = (probe.name, next_at)
                task.add_done_callback(mine.discard)
                task.add_done_callback(self._landed)
            # our own lateness (a busy event loop) is not the service's: missed slots are
            # skipped, not sent in a burst timed from when they were due
            next_at = max(next_at + self.every, self.clock.monotonic())

    async def _one(self, probe: Probe, at: float) -> None:
        try:
            sample = await probe.sample(at, clock=self.clock)
        except ChaosError as exc:  # misconfigured, not failing: no point asking again
            loop = self._tasks.pop(probe.name, None)
            if loop is not None:
                loop.cancel()
                self._on_error(exc)
            return
        self._record(sample)

    def _landed(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)

    def _record(self, sample: Sample) -> None:
        self.samples.append(sample)
        self._on_sample(sample)

    async def settle(self, end: float, probes: Collection[str]) -> None:
        """Wait until every sample of `probes` sent before `end` is answered or timed out, so a
        window judges the samples it sent, not only the quick ones (the hung ones are the
        ones a window closing early would leave out). Probes no check judges are not waited
        for."""
        longest = max((p.timeout for p in self.probes if p.name in probes), default=0.0)
        while any(at < end and name in probes for name, at in self._in_flight.values()):
            if self.clock.monotonic() > end + longest + SETTLE_MARGIN:
                return
            await self.clock.sleep(0.01)

    async def stop(self) -> None:
        tasks = [*self._tasks.values(), *self._in_flight]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = {}
        self._in_flight.clear()

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.at < end]

    def recovered_at(self, since: float, checks: Sequence[Check]) -> float | None:
        """When the checks first held again after `since`, judged on each probe's latest answer.

        Only probes sent after `since` count: one already in flight may have been answered
        by the system as it was before. Answers are taken in the order they arrived.
        """
        latest: dict[str, Sample] = {}
        for s in self.samples:
            done = s.at + s.latency
            if s.at < since:
                continue
            latest[s.probe] = s
            if len(latest) == len(self.probes) and all(
                c.evaluate(list(latest.values()), 0.0, min_events=1).passed for c in checks
            ):
                return done
        return None
