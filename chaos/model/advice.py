"""Warnings: what a file may say but probably does not mean, reported by `chaos validate`
without making the file invalid (a `match` no request can meet: the fault is injected and
reverted, and nothing happens in between).

A type's cross-field check (FaultShape.check) returns `Advice(message)` instead of a plain
message for such a case; the fault list then records it here, with its location, instead of
reporting a problem. Loading stays a pure function of the file: the warnings go to whoever
asked for them (`with collected() as warnings:`), and are dropped when nobody did, so callers
that only need the Experiment (`chaos run`) are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from chaos.errors import Problem


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
