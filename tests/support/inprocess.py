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
from chaos.testing import ManualClock, MemoryLedger, RecordingAdapter, registry_with


def experiment(text: str) -> Experiment:
    return load_text(SourceText("<test>", textwrap.dedent(text)), vocabulary(), {})


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

    def __post_init__(self) -> None:
        self.clock = ManualClock()
        self.adapter = RecordingAdapter(self.clock, **self.adapter_options)
        self.ledger = MemoryLedger(self.tmp, clock=self.clock, refuse=self.refuse)
        self.bus = EventBus(clock=self.clock)
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)
        self.lifecycle = Lifecycle()
        self.engine = Engine(self.exp, adapters=registry_with(self.adapter), ledger=self.ledger,
                             bus=self.bus, run_id="run-1", out_dir=self.tmp / "out",
                             clock=self.clock, lifecycle=self.lifecycle, seed=1, watchdog=None)

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
