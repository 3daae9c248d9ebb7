"""Warnings: what a file may say but probably does not mean, reported by `chaos validate`
without making the file invalid (a `match` no request can meet: the fault is injected and
reverted, and nothing happens in between; a phase window too short for the probe samples a
verdict needs, which can only ever be NO_DATA).

A type's cross-field check (FaultShape.check) returns `Advice(message)` instead of a plain
message for such a case; the fault list then records it here, with its location, instead of
reporting a problem. Loading stays a pure function of the file: the warnings go to whoever
asked for them (`with collected() as warnings:`), and are dropped when nobody did, so callers
that only need the Experiment (`chaos run`) are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from chaos.errors import Problem
from chaos.units import format_duration

# a window with fewer probe samples is NO_DATA, never PASS (chaos.slo.checks takes it from here)
MIN_PROBE_SAMPLES = 3


class Advice(str):
    """A check's message that is a warning: the file stays valid."""


_sink: ContextVar[list[Problem] | None] = ContextVar("chaos_model_advice", default=None)


@contextmanager
def collected() -> Iterator[list[Problem]]:
    """The warnings of every file loaded inside the block, in the order they were found."""
    found: list[Problem] = []
    token = _sink.set(found)
    try:
        yield found
    finally:
        _sink.reset(token)


def advise(warning: Problem) -> None:
    """Record a warning for the `collected()` block around this load, if there is one."""
    found = _sink.get()
    if found is not None:
        found.append(warning)


def thin_window(window: float, every: float, needed: int) -> Advice | None:
    """Advice when a phase window cannot hold the `needed` probe samples taken every `every`
    seconds: its verdict could only be NO_DATA. Says how many it holds and what to write."""
    held = int(window / every + 1e-9)
    if held >= needed:
        return None
    shorter = math.floor(window / needed * 1000) / 1000  # rounded down: still `needed` rounds
    return Advice(f"a {format_duration(window)} window sampled every {format_duration(every)} "
                  f"holds {held} probe sample{'s' if held != 1 else ''}, fewer than the "
                  f"{needed} a verdict needs (it would be NO_DATA); write `window: "
                  f"{format_duration(needed * every)}` or more, or `every: "
                  f"{format_duration(shorter)}` or less")
