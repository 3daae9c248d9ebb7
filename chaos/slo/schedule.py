"""The arrival schedule of open-model traffic: when request n is due, for any load profile.

A profile (a constant rate with a ramp, `stages`, a `spike`) is a piecewise-linear rate over
time. Request n is due when the integral of the rate reaches n, solved exactly per segment (a
quadratic on a ramp), so changing rates never accumulates drift and a stage boundary falls
where it was declared, to the request. The last segment's rate holds for ever (a run that
outlasts its stages keeps their last rate). Stages are named so windows can be reported per
stage.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Segment:
    start: float  # seconds after the start of the traffic
    seconds: float  # math.inf for the last one
    begin: float  # requests per second at `start`
    end: float  # ... at `start + seconds` (linear in between)
    stage: int  # which declared stage (or spike part) it belongs to


@dataclass(frozen=True)
class Stage:
    """A span with one target rate, for per-stage reports."""

    name: str
    start: float
    seconds: float
    rate: float


class RateSchedule:
    """Piecewise-linear requests per second; `offset_of(n)` is exact and O(log segments)."""

    def __init__(self, segments: Sequence[Segment], stages: Sequence[Stage] = ()) -> None:
        assert segments and math.isinf(segments[-1].seconds)
        self.segments = tuple(segments)
        self.stages = tuple(stages)
        self._counts = [0.0]  # requests due before each segment's start
        for seg in self.segments[:-1]:
            self._counts.append(self._counts[-1] + seg.seconds * (seg.begin + seg.end) / 2)
        self.peak = max(max(s.begin, s.end) for s in self.segments)

    @classmethod
    def constant(cls, rate: float, ramp: float = 0.0) -> RateSchedule:
        segments = [Segment(0.0, ramp, 0.0, rate, 0)] if ramp > 0 else []
        segments.append(Segment(ramp, math.inf, rate, rate, 0))
        return cls(segments)

    @classmethod
    def of_stages(cls, stages: Sequence[Mapping[str, Any]]) -> RateSchedule:
        """k6's ramping arrival rate: each stage reaches its `rate` from the previous one over
        its `ramp` (0: a step), then holds it for the rest of its `for`."""
        segments, named, at, previous = [], [], 0.0, None
        for i, stage in enumerate(stages):
            rate, length = float(stage["rate"]), float(stage["for"])
            ramp = min(float(stage.get("ramp") or 0.0), length) if previous is not None else 0.0
            if ramp > 0:
                segments.append(Segment(at, ramp, previous or 0.0, rate, i))
            segments.append(Segment(at + ramp, length - ramp, rate, rate, i))
            named.append(Stage(f"stage {i + 1} ({rate:,.0f}/s)", at, length, rate))
            at, previous = at + length, rate
        last = segments[-1]
        segments[-1] = Segment(last.start, math.inf, last.begin, last.end, last.stage)
        return cls([s for s in segments if s.seconds > 0], named)

    @classmethod
    def of_spike(cls, spike: Mapping[str, Any]) -> RateSchedule:
        """`base` until `at`, `peak` for `for` (reached and left over `ramp`), then `base`."""
        base, peak = float(spike["base"]), float(spike["peak"])
        at, length = float(spike["at"]), float(spike["for"])
        ramp = min(float(spike.get("ramp") or 0.0), length / 2)
        segments = [Segment(0.0, at, base, base, 0), Segment(at, ramp, base, peak, 1),
                    Segment(at + ramp, length - 2 * ramp, peak, peak, 1),
                    Segment(at + length - ramp, ramp, peak, base, 1),
                    Segment(at + length, math.inf, base, base, 2)]
        stages = [Stage(f"before the spike ({base:,.0f}/s)", 0.0, at, base),
                  Stage(f"spike ({peak:,.0f}/s)", at, length, peak),
                  Stage(f"after the spike ({base:,.0f}/s)", at + length, math.inf, base)]
        return cls([s for s in segments if s.seconds > 0], stages)

    @classmethod
    def of_breaking_point(cls, spec: Mapping[str, Any]) -> RateSchedule:
        """`from`, `from + step`, ... up to `max`, each for `every` (the last one holds)."""
        first, step, top = float(spec["from"]), float(spec["step"]), float(spec["max"])
        count = int(math.floor((top - first) / step + 1e-9)) + 1
        schedule = cls.of_stages([{"rate": first + i * step, "for": float(spec["every"])}
                                  for i in range(max(count, 1))])
        named = [Stage(f"step {i + 1} ({s.rate:,.0f}/s)", s.start, s.seconds, s.rate)
                 for i, s in enumerate(schedule.stages)]
        return cls(schedule.segments, named)

    def rate_at(self, elapsed: float) -> float:
        if elapsed < 0:
            return 0.0
        seg = self.segments[max(0, bisect.bisect_right(
            [s.start for s in self.segments], elapsed) - 1)]
        if math.isinf(seg.seconds) or seg.seconds == 0:
            return seg.end
        return seg.begin + (seg.end - seg.begin) * (elapsed - seg.start) / seg.seconds

    def offset_of(self, n: int) -> float:
        """Seconds after the start at which request `n` (from 0) is due (inf: never)."""
        i = bisect.bisect_right(self._counts, n) - 1
        while True:
            seg, k = self.segments[i], n - self._counts[i]
            slope = 0.0 if math.isinf(seg.seconds) else (seg.end - seg.begin) / seg.seconds
            if slope == 0.0:
                if seg.begin > 0:
                    return seg.start + k / seg.begin
            else:  # begin*t + slope*t^2/2 = k
                disc = seg.begin * seg.begin + 2 * slope * k
                if disc >= 0:
                    t = (math.sqrt(disc) - seg.begin) / slope
                    if t <= seg.seconds:
                        return seg.start + t
            if i + 1 >= len(self.segments):
                return math.inf  # the last rate is 0: nothing more is due
            i += 1


__all__ = ["RateSchedule", "Segment", "Stage"]
