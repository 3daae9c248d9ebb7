"""Failpoints: named places where crash tests make the runner die on purpose.

`CHAOS_FAILPOINTS=after_intent` makes the runner SIGKILL itself right after writing an intent
record, so tests can prove the watchdog reverts from every step of the protocol - not only at
the moments a timer happens to hit. `NAME:stop` makes it SIGSTOP itself there instead, so a test
can change the world at that exact step (fill or remount the state disk) and then SIGCONT it.
Unset (always, in real use) this costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = frozenset({
    "before_intent", "after_intent", "after_inject", "before_applied", "after_applied",
    "before_revert", "after_revert", "after_reverted", "during_cleanup",
})
_ACTIVE = dict((item.partition(":")[0], item.partition(":")[2] or "kill")
               for item in os.environ.get("CHAOS_FAILPOINTS", "").split(",") if item)
_SIGNALS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}


def hit(name: str) -> None:
    assert name in POINTS, name
    if name in _ACTIVE:
        os.kill(os.getpid(), _SIGNALS[_ACTIVE[name]])
