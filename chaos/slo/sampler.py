"""Runs probes on a fixed schedule and keeps their samples, so phases are just time ranges.

Each probe has its own loop: a slow probe (a frozen service, answering only at its timeout)
delays its own next sample, never the other probes'. Samples go to a callback as they arrive,
which is how guardrails are evaluated every round.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from chaos.slo.checks import Sample
from chaos.slo.probes import Probe


class Sampler:
    def __init__(self, probes: Sequence[Probe], on_sample: Callable[[Sample], None]) -> None:
        self.probes = list(probes)
        self.samples: list[Sample] = []
        self.every = 0.5
        self._on_sample = on_sample
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
            sample = await probe.sample()
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

    def recovered_at(self, since: float) -> float | None:
        """When every probe first answered ok again after `since` (their latest samples)."""
        latest_ok: dict[str, float] = {}
        for s in self.samples:
            if s.at + s.latency < since:  # answered before the revert: says nothing
                continue
            if s.ok:
                latest_ok.setdefault(s.probe, s.at + s.latency)
            else:
                latest_ok.pop(s.probe, None)
        if len(latest_ok) < len(self.probes):
            return None
        return max(latest_ok.values())
