"""A probe kind whose answers a test scripts per time, registered in a fresh probe registry, and
an in-process engine run of a probe hypothesis on the manual clock that drives it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.model.schema import Obj, Str
from chaos.slo.probe_kinds import ProbeKind, ProbeKinds, new_probe_kinds
from chaos.testing import ManualClock
from tests.support.inprocess import Harness, experiment

NEVER = float("inf")  # an answer that never comes


@dataclass(frozen=True)
class Answer:
    ok: bool = True
    after: float = 0.01  # seconds on the clock from the ask to the answer; NEVER: hangs
    detail: str = ""


UP, DOWN, HANGS = Answer(), Answer(False, detail="HTTP 503"), Answer(after=NEVER)
Script = Callable[[float], Answer]  # seconds since the run began -> the answer given then


def between(start: float, end: float, inside: Answer, outside: Answer = UP) -> Script:
    """`inside` for asks in [start, end), `outside` otherwise."""
    return lambda t: inside if start <= t < end else outside


def scripted_kinds(clock: ManualClock, scripts: Mapping[str, Script],
                   asked: list[tuple[str, float]]) -> ProbeKinds:
    """A fresh registry with the built-in kinds and `scripted`, answering from `scripts` by
    the clock's time since now; every ask is appended to `asked` as (script, time)."""
    began = clock.monotonic()

    async def ask(spec: Mapping[str, Any]) -> tuple[bool, str]:
        now = clock.monotonic() - began
        asked.append((spec["script"], now))
        answer = scripts[spec["script"]](now)
        if answer.after == NEVER:
            await asyncio.get_running_loop().create_future()  # cancelled at the timeout
        await clock.sleep(answer.after)
        return answer.ok, answer.detail

    kinds = new_probe_kinds()
    kinds.add(ProbeKind("scripted", Obj({
        "script": Str("which of the test's scripts answers"),
    }, "answers as the test scripted"), ask, default_timeout=1.0))
    return kinds


HYPOTHESIS = """\
title: scripted
hypothesis:
  probes:
%(probes)s
  checks: [%(checks)s]
  before: {window: %(before)s, every: 1s}
  during: {every: 1s, window: 3s%(aborts)s}
  after: {settle: %(settle)s, window: 10s, every: 1s%(recover)s}
%(extra)s
faults:
%(faults)s
"""


def fault_lines(*specs: tuple[str, float, float]) -> str:
    return "\n".join(f"  - {{name: {name}, type: process.suspend, start: {start}s, "
                     f"duration: {duration}s, target: {{process: {{name: nothing-real}}}}}}"
                     for name, start, duration in specs)


class ScriptedRun(Harness):
    """An engine whose hypothesis probes are `scripted`: `scripts` maps each probe name (its
    script) to what it answers when."""

    def __init__(self, tmp: Path, scripts: Mapping[str, Script], *, checks: str,
                 aborts: str = "", faults: tuple[tuple[str, float, float], ...] = (
                     ("a", 0, 10),), recover_within: str = "", settle: str = "1s",
                 extra: str = "", before: str = "10s") -> None:
        self.asked: list[tuple[str, float]] = []
        clock = ManualClock()
        kinds = scripted_kinds(clock, scripts, self.asked)
        probes = "\n".join(f"    - {{name: {name}, scripted: {{script: {name}}}}}"
                           for name in scripts)
        text = HYPOTHESIS % {
            "probes": probes, "checks": checks, "settle": settle, "before": before,
            "aborts": f", abort: [{aborts}]" if aborts else "",
            "recover": f", recover_within: {recover_within}" if recover_within else "",
            "extra": extra, "faults": fault_lines(*faults)}
        super().__init__(experiment(text, probes=kinds), tmp, clock=clock, probes=kinds)
