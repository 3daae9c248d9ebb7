"""Runs probes on a fixed schedule and keeps their samples, so phases are just time ranges.

Each probe has its own loop: a slow probe (a frozen service, answering only at its timeout)
delays its own next sample, never the other probes'. Samples go to a callback as they arrive,
which is how guardrails are evaluated every round.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from chaos.errors import ChaosError
from chaos.slo.checks import Check, Sample
from chaos.slo.probes import Probe


class Sampler:
    def __init__(self, probes: Sequence[Probe], on_sample: Callable[[Sample], None],
                 on_error: Callable[[ChaosError], None]) -> None:
        self.probes = list(probes)
        self.samples: list[Sample] = []
        self.every = 0.5
        self._on_sample = on_sample
        self._on_error = on_error
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, every: float) -> None:
        self.every = every
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._loop(p), name=f"probe:{p.name}")
                           for p in self.probes]

    async def _loop(self, probe: Probe) -> None:
        next_at = time.monotonic()
        while True:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                sample = await probe.sample()
            except ChaosError as exc:  # misconfigured, not failing: no point asking again
                self._on_error(exc)
                return
            self.samples.append(sample)
            self._on_sample(sample)
            next_at = max(next_at + self.every, time.monotonic())

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

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
