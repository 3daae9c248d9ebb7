"""The clock a run reads: monotonic time, wall time and sleeping, as one injectable object.

The engine, the observer and the event bus take a `Clock` instead of calling `time` and
`asyncio.sleep` themselves, so a test can drive a whole run on a manual clock
(`chaos.testing.ManualClock`) in milliseconds, with exact timeline offsets, instead of
sleeping through it. Production code uses `SYSTEM_CLOCK`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (durations, deadlines within a run)."""

    def time(self) -> float:
        """Wall-clock epoch seconds (what the ledger and the journal record)."""

    async def sleep(self, seconds: float) -> None:
        """Return after `seconds` on this clock; cancellable like asyncio.sleep."""


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
