"""Probes: small questions asked of the system, each answering ok / not ok and a latency.

The kinds (http, tcp, exec, process, pods, deployment, and plugins') are a registry
(chaos.slo.probe_kinds); this module asks one of them once, on the open model's terms. Every
probe has a timeout and is cancellable at any await, so a signal or a guardrail never waits for
a slow probe. A full open-model traffic generator is the SLO engine's job (chaos.slo.traffic);
probes are for simple steady-state questions. Time (the intended send time, the timeout, the
latency) is read from a `chaos.clock.Clock`, so a manual clock drives probes in tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chaos.clock import SYSTEM_CLOCK, Clock

from chaos.model.experiment import ProbeSpec
from chaos.slo.checks import Sample
from chaos.slo.probe_kinds import ProbeKind, ProbeKinds, default_probe_kinds

T = TypeVar("T")


@dataclass(frozen=True)
class Probe:
    name: str
    kind: str
    spec: Mapping[str, Any]
    registry: ProbeKinds = field(default_factory=default_probe_kinds, repr=False,
                                 compare=False)

    @classmethod
    def from_spec(cls, spec: ProbeSpec, registry: ProbeKinds | None = None) -> Probe:
        kinds = registry or default_probe_kinds()
        if kinds.get(spec.kind).cluster:
            return cls(spec.name, spec.kind, {**spec.spec, "kubernetes": spec.kubernetes}, kinds)
        return cls(spec.name, spec.kind, spec.spec, kinds)

    @property
    def declared(self) -> ProbeKind:
        return self.registry.get(self.kind)

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeout") or self.declared.timeout)

    async def sample(self, at: float | None = None, *, clock: Clock = SYSTEM_CLOCK) -> Sample:
        """Ask once. `at` is the intended send time (`clock.monotonic()`; default now): the
        latency and the timeout count from it, so a late sampler cannot hide a slow answer. A
        timed-out sample's latency is unknown, greater than the timeout: it is recorded as the
        timeout with `timed_out` set, and latency percentiles that fall on it fail."""
        intended = clock.monotonic() if at is None else at
        timed_out = False
        try:
            ok, detail = await within(self.declared.run(self.spec),
                                      intended + self.timeout - clock.monotonic(), clock)
        except TimeoutError:
            ok, detail, timed_out = False, f"no answer within {self.timeout:g}s", True
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:  # SSLError: OSError
            # ValueError: a malformed answer (an over-long header line, a bad chunk size)
            ok, detail = False, f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
        latency = self.timeout if timed_out else clock.monotonic() - intended
        return Sample(self.name, intended, ok, latency, detail, timed_out=timed_out)


async def within(question: Awaitable[T], seconds: float, clock: Clock) -> T:
    """`question`'s answer, or TimeoutError once `seconds` have passed on `clock` (then the
    question is cancelled and its unwinding awaited, as asyncio.timeout would). Cancelling the
    caller cancels the question too: a signal never waits for a slow probe."""
    asking = asyncio.ensure_future(question)
    timer = asyncio.ensure_future(clock.sleep(max(seconds, 0.0)))
    try:
        await asyncio.wait((asking, timer), return_when=asyncio.FIRST_COMPLETED)
    finally:  # answered, timed out or cancelled: neither task outlives the question
        timer.cancel()
        if not asking.done():
            asking.cancel()
            await asyncio.gather(asking, return_exceptions=True)
    if asking.cancelled():
        raise TimeoutError
    return asking.result()
