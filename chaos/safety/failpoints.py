"""Failpoints: named places where crash tests make the runner die on purpose.

`CHAOS_FAILPOINTS=after_intent` makes the runner SIGKILL itself right after writing an intent
record, so tests can prove the watchdog reverts from every step of the protocol - not only at
the moments a timer happens to hit. Unset (always, in real use) this costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = frozenset({
    "before_intent", "after_intent", "after_inject", "before_applied", "after_applied",
    "before_revert", "after_revert", "after_reverted", "during_cleanup",
})
_ACTIVE = frozenset(filter(None, os.environ.get("CHAOS_FAILPOINTS", "").split(",")))


def hit(name: str) -> None:
    assert name in POINTS, name
    if name in _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
