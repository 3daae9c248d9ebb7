"""In-process runs of the real engine through chaos.testing: experiments from YAML text, a
recording adapter, an in-memory ledger and a manual clock - milliseconds per run."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.model.experiment import Experiment
from chaos.model.loader import load_text
from chaos.model.source import SourceText
from chaos.runner.engine import Engine, RunResult
from chaos.runner.events import Event, EventBus
from chaos.runner.lifecycle import Lifecycle
from chaos.runner.load import vocabulary
from chaos.slo.probe_kinds import ProbeKinds
from chaos.testing import ManualClock, MemoryLedger, RecordingAdapter, registry_with


def experiment(text: str, probes: ProbeKinds | None = None) -> Experiment:
    return load_text(SourceText("<test>", textwrap.dedent(text)), vocabulary(probes=probes), {})


def faults(*specs: tuple[str, float, float], fault_type: str = "process.suspend",
           max_targets: int = 10) -> Experiment:
    """An experiment with these (name, start, duration) faults, no hypothesis."""
    lines = ["title: in-process", f"limits: {{max_targets: {max_targets}}}", "faults:"]
    for name, start, duration in specs:
        lines += [f"  - name: {name}", f"    type: {fault_type}",
                  "    target: {process: {name: nothing-real}}",
                  f"    start: {start}s"] + ([f"    duration: {duration}s"] if duration else [])
    return experiment("\n".join(lines) + "\n")


@dataclass
class Harness:
    """One engine, wired to the test seam; `run()` drives it on the manual clock."""

    exp: Experiment
    tmp: Path
    adapter_options: dict[str, Any] = field(default_factory=dict)
    refuse: tuple[str, ...] = ()
    clock: ManualClock = field(default_factory=ManualClock)
    probes: ProbeKinds | None = None  # the probe kinds the engine knows (None: the default)

    def __post_init__(self) -> None:
        self.adapter = RecordingAdapter(self.clock, **self.adapter_options)
        self.ledger = MemoryLedger(self.tmp, clock=self.clock, refuse=self.refuse)
        self.bus = EventBus(clock=self.clock)
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)
        self.lifecycle = Lifecycle()
        self.engine = Engine(self.exp, adapters=registry_with(self.adapter), ledger=self.ledger,
                             bus=self.bus, run_id="run-1", out_dir=self.tmp / "out",
                             clock=self.clock, lifecycle=self.lifecycle, seed=1, watchdog=None,
                             probes=self.probes)

    def run(self, during: Callable[[Harness], Any] | None = None) -> RunResult:
        async def main() -> RunResult:
            if during is None:
                return await self.clock.run(self.engine.run())
            result, _ = await self.clock.run(asyncio.gather(self.engine.run(), during(self)))
            return result  # type: ignore[no-any-return]
        return asyncio.run(main())

    def names(self, prefix: str = "") -> list[str]:
        return [e.name for e in self.events if e.name.startswith(prefix)]

    def ledger_events(self) -> list[str]:
        return [e for e in self.ledger.events("run-1") if e not in ("run", "finished")]


PROBED = """\
title: observed
hypothesis:
  probes:
    - name: home
      http: {url: "http://127.0.0.1:9/", timeout: 1s}
    - name: api
      http: {url: "http://127.0.0.1:9/api", timeout: 1s}
  checks: [%s]
  before: {window: 10s, every: 1s}
  during: {every: 1s, window: 5s, abort: [%s]}
  after: {settle: 1s, window: 10s}
faults:
  - name: a
    type: process.suspend
    target: {process: {name: nothing-real}}
    duration: 10s
"""


@dataclass
class Observed:
    """An Observer of a probe hypothesis on a manual clock, fed samples the test chooses."""

    checks: str = "home >= 99%"
    aborts: str = "home < 50%"
    text: str = ""  # the whole experiment, instead of PROBED with these checks

    def __post_init__(self) -> None:
        from chaos.runner.observer import Observer

        self.exp = experiment(self.text or PROBED % (self.checks, self.aborts))
        assert self.exp.hypothesis is not None
        self.hyp = self.exp.hypothesis
        self.clock = ManualClock()
        self.bus = EventBus(clock=self.clock)
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)
        self.aborted: list[tuple[Any, str]] = []
        self.errors: list[Exception] = []
        self.observer = Observer(self.hyp, self.bus,
                                 abort=lambda code, why: self.aborted.append((code, why)),
                                 stopping=lambda: bool(self.aborted),
                                 on_probe_error=self.errors.append, clock=self.clock)

    def feed(self, probe: str, oks: str, *, start: float = 1000.0, every: float = 1.0,
             latency: float = 0.01) -> None:
        """One sample per character of `oks` ('1' answered ok, '0' failed, 't' timed out)."""
        from chaos.slo.checks import Sample

        for k, mark in enumerate(oks):
            sample = Sample(probe, start + k * every, mark == "1",
                            1.0 if mark == "t" else latency, "" if mark == "1" else "HTTP 500",
                            timed_out=mark == "t")
            self.observer.sampler.samples.append(sample)  # as the sampler records an answer
            self.observer.sampled(sample)

    def judge(self, phase: str = "before", start: float = 1000.0, end: float = 1010.0) -> Any:
        async def evaluate() -> Any:
            await self.observer.evaluate(phase, self.hyp.checks, start, end)
            return self.observer.verdicts[phase]
        return asyncio.run(evaluate())


TRAFFIC = """\
title: measured
hypothesis:
  traffic: {http: {url: "http://127.0.0.1:9/", rate: 100/s, timeout: 2s}}
  checks: [%s]
  before: {window: 10s}
  during: {every: 1s, window: 5s}
  after: {settle: 1s, window: 10s}
faults:
  - name: a
    type: process.suspend
    target: {process: {name: nothing-real}}
    duration: 10s
"""


@dataclass(frozen=True)
class KnownWindow:
    """What a traffic window measured, chosen by the test (chaos.slo.checks.Evidence)."""

    events: int
    errors: int = 0
    latency: float = 0.01  # every request's
    invalid: str = ""
    error: str = ""
    source: str = "traffic"
    detail: str = "HTTP 503"

    def quantile(self, q: float) -> float | None:
        return self.latency if self.events else None

    def fraction_at_most(self, seconds: float) -> float | None:
        return (1.0 if self.latency <= seconds else 0.0) if self.events else None


class KnownTraffic:
    """A traffic source whose every window is `window`: the observer judges what it is told."""

    def __init__(self, window: KnownWindow) -> None:
        from types import SimpleNamespace

        self.known = window
        self.t0 = 0.0
        self.schedule = SimpleNamespace(stages=[])

    async def settle(self, end: float) -> None:
        return None

    def window(self, since: float, end: float) -> KnownWindow:
        return self.known


def measured(check: str, window: KnownWindow) -> tuple[Observed, Any]:
    """The verdict of `check` over a traffic window that measured `window`."""
    seen = Observed(text=TRAFFIC % check)
    seen.observer.traffic = KnownTraffic(window)  # type: ignore[assignment]
    (verdict,) = seen.judge()
    return seen, verdict
