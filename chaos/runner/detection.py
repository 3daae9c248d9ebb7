"""The detection watch: polls the alerts of `detection:` and times what monitoring noticed.

It learns about the faults from the event bus (fault.injected, fault.reverted) and reports what it
sees as events (alert.observed, alert.poll_failed, alert.measured, and check.evaluated in a
`detection` phase), so the engine only starts it, waits for its deadlines after the faults are
reverted, and asks for its judgement. Polling runs in its own task, bounded by the source's
timeout: a hung Alertmanager never delays an injection or a revert (the one exception: a
source that has not answered yet is polled once when the declared services are up, before
anything is injected).

Times are seconds since the run started, like injections'. A state change is placed between the
poll that saw it and the one before; when the source says when the alert became active
(Alertmanager's startsAt, Prometheus' activeAt), that moment is used within those bounds, so the
time to detect is exact up to the source's own scrape and evaluation intervals.

Verdicts: an expected alert already firing before the first injection proves nothing (INVALID);
one not firing within `within` of the first injection, or not resolved within `resolves_within`
of the last revert, FAILs, as does a forbidden alert that fires at any time of the run.

Failed polls are judged by when they happened (`Coverage`). The monitoring stack may be a
service of the experiment itself, started with the run: polls that fail before the source first
answers and before the first injection are *waiting for the source*, not errors. A source that
has not answered by the first injection could not see alerts when the fault began: ERROR. After
that, failed polls leave a gap in coverage, and a gap turns ERROR only the verdicts whose
outcome could hide in it - a forbidden alert that could have fired (and resolved) unseen, an
expectation still undecided while the gap lasted; what successful polls already decided (an
expected alert seen firing in time) stays decided.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

from chaos.errors import ExitCode
from chaos.model.experiment import AlertRule, Detection
from chaos.runner.events import Event, EventBus
from chaos.slo.alerts import Alert, AlertReader, AlertSource, QueryFailed, matches
from chaos.slo.checks import Check, Status, Verdict
from chaos.units import format_duration


@dataclass
class Seen:
    """What one rule's alerts did, in seconds since the run started."""

    rule: AlertRule
    before_injection: dict[str, str] | None = None  # labels of one firing before injection
    first_pending: float | None = None
    first_firing: float | None = None
    resolved: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    state: str = ""  # firing | silenced | inhibited, when first seen firing
    firing_now: bool = False

    def record(self, injected: float | None, reverted: float | None) -> dict[str, Any]:
        detect = None if self.first_firing is None or injected is None else round(
            self.first_firing - injected, 3)
        # resolved before the last revert (another fault's revert, or on its own): 0
        resolve = None if self.resolved is None or reverted is None else max(0.0, round(
            self.resolved - reverted, 3))
        return {"alert": self.rule.text, "expected": self.rule.expected,
                "matchers": [list(m) for m in self.rule.matchers], "within": self.rule.within,
                "resolves_within": self.rule.resolves_within,
                "first_pending": self.first_pending, "first_firing": self.first_firing,
                "resolved": self.resolved, "time_to_detect": detect, "time_to_resolve": resolve,
                "labels": self.labels, "state": self.state or None,
                "firing_before_injection": self.before_injection}


Outcome = tuple[Status, float | None, str]  # a verdict's status, value and reason


@dataclass(frozen=True)
class Gap:
    """Polls failed from just after `start` (the last poll that answered; 0.0: none had) until
    `end` (the next one that did; None: none did before the watch ended)."""

    start: float
    end: float | None
    polls: int  # how many failed
    error: str  # the last one's

    def overlaps(self, low: float, high: float) -> bool:
        return self.start < high and (self.end is None or self.end > low)

    def covers(self, t: float) -> bool:
        return self.start < t and (self.end is None or self.end >= t)

    def __str__(self) -> str:
        until = "the end" if self.end is None else f"{self.end:.1f}s"
        return f"{self.polls} poll(s) failed between {self.start:.1f}s and {until}: {self.error}"


@dataclass
class Coverage:
    """When the source could be seen: its first answer, the failed polls spent waiting for it
    (before that answer and before the first injection), and the gaps after."""

    answered: float | None = None  # the first poll that answered, seconds since run start
    waiting: int = 0  # polls that failed while waiting for the source
    gaps: list[Gap] = field(default_factory=list)
    last_error: str = ""
    last_ok: float | None = None  # the last poll that answered
    failing: list[str] = field(default_factory=list)  # errors of the failing series

    def ok(self, now: float, injected: float | None) -> None:
        now = round(now, 3)
        self._end_series(now, injected)
        self.answered = now if self.answered is None else self.answered
        self.last_ok = now

    def failed(self, error: str, injected: float | None) -> bool:
        """Record a failed poll; True when it is waiting for the source."""
        self.failing.append(error)
        self.last_error = error
        waiting = self.answered is None and injected is None
        self.waiting += waiting
        return waiting

    def close(self, injected: float | None) -> None:
        """The watch ended: a failing series still open is a gap (unless nothing was injected
        and the source never answered: still waiting)."""
        self._end_series(None, injected)

    def _end_series(self, end: float | None, injected: float | None) -> None:
        """A series of failed polls is a gap once the source had answered, or once something
        was injected while it had not (then the gap runs from the run's start)."""
        if self.failing and (self.last_ok is not None or injected is not None):
            self.gaps.append(Gap(self.last_ok or 0.0, end, len(self.failing),
                                 self.failing[-1]))
        self.failing = []

    def gap_over(self, low: float, high: float) -> Gap | None:
        return next((g for g in self.gaps if g.overlaps(low, high)), None)

    def record(self) -> dict[str, Any]:
        return {"source_answered": self.answered,
                "gaps": [[g.start, g.end] for g in self.gaps]}


class AlertWatch:
    def __init__(self, detection: Detection, bus: EventBus,
                 source: AlertReader | None = None) -> None:
        self.detection = detection
        self.bus = bus
        self.source = source or AlertSource.from_spec(detection.source, detection.endpoint)
        self.seen = [Seen(rule) for rule in detection.rules]
        self.polls = 0
        self.coverage = Coverage()
        self.injected: float | None = None  # first injection, seconds since run start
        self.reverted: float | None = None  # last revert
        self.verdicts: list[Verdict] = []
        self._waiting = False  # the last failed poll was waiting for the source
        self._polling = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.name == "fault.injected" and self.injected is None:
            self.injected = event.t
        elif event.name == "fault.reverted":
            self.reverted = event.t

    async def start(self) -> None:
        """One poll now (what fires before any injection is known), then every `every`."""
        await self._poll()
        self._task = asyncio.create_task(self._loop(), name="detection")

    async def services_ready(self) -> None:
        """The declared services are up, nothing is injected yet: if the source has not
        answered so far (a monitoring stack among those services), poll once now rather than
        inject before the next poll could see it. Bounded by the source's timeout."""
        if self.coverage.answered is None:
            await self._poll()

    async def _loop(self) -> None:
        while True:
            await self.bus.clock.sleep(self.detection.every)
            await self._poll()

    async def _poll(self) -> None:
        async with self._polling:  # one at a time: a poll's answer never overtakes a later one's
            try:
                alerts = await self.source.alerts()
            except QueryFailed as exc:
                self._failed(str(exc))
            else:
                self._answered(alerts)

    def _answered(self, alerts: list[Alert]) -> None:
        now = self.bus.elapsed()
        self.polls += 1
        for seen in self.seen:
            self._update(seen, [a for a in alerts if matches(seen.rule.matchers, a.labels)], now)
        self.coverage.ok(now, self.injected)  # after: a change is placed since the last answer

    def _failed(self, error: str) -> None:
        """Said once per series of failures, and again when waiting for the source turns into
        not seeing the fault begin."""
        first = not self.coverage.failing
        waiting = self.coverage.failed(error, self.injected)
        if first or self._waiting and not waiting:
            self.bus.emit("alert.poll_failed", source=self.source.shown, error=error,
                          waiting=waiting)
        self._waiting = waiting

    def _when(self, alert: Alert, now: float, rule: AlertRule) -> float:
        """When it happened: between the last poll and this one; where the source says if it
        says (and never before the first injection, for what only counts after it)."""
        low = self.coverage.last_ok if self.coverage.last_ok is not None else now
        if rule.expected and self.injected is not None:
            low = max(low, self.injected)
        if alert.since is None:
            return round(now, 3)
        at = now - (self.bus.clock.time() - alert.since)
        return round(min(now, max(low, at)), 3)

    def _update(self, seen: Seen, alerts: list[Alert], now: float) -> None:
        firing = [a for a in alerts if a.firing]
        pending = [a for a in alerts if not a.firing]
        counting = self.injected is not None or not seen.rule.expected
        if firing and self.injected is None and seen.before_injection is None:
            seen.before_injection = dict(firing[0].labels)
        if counting and pending and seen.first_pending is None:
            seen.first_pending = self._when(pending[0], now, seen.rule)
            self._observed(seen, "pending", pending[0], seen.first_pending)
        if counting and firing and seen.first_firing is None:
            seen.first_firing = self._when(firing[0], now, seen.rule)
            seen.labels, seen.state = dict(firing[0].labels), firing[0].state
            self._observed(seen, firing[0].state, firing[0], seen.first_firing)
        if seen.firing_now and not firing and seen.first_firing is not None:
            seen.resolved = round(now, 3)
            self.bus.emit("alert.observed", alert=seen.rule.text, state="resolved",
                          labels=seen.labels, at=seen.resolved)
        elif firing and not seen.firing_now and seen.resolved is not None:
            seen.resolved = None  # it fired again: resolved is when it last stopped
            self._observed(seen, firing[0].state, firing[0], round(now, 3))
        seen.firing_now = bool(firing)

    def _observed(self, seen: Seen, state: str, alert: Alert, at: float) -> None:
        self.bus.emit("alert.observed", alert=seen.rule.text, state=state,
                      labels=dict(alert.labels), at=at)

    # --- the end
    def _decided(self, seen: Seen) -> bool:
        rule = seen.rule
        if not rule.expected or seen.before_injection is not None:
            return True
        if seen.first_firing is None:
            return False
        return rule.resolves_within is None or (seen.resolved is not None
                                                 and self.reverted is not None)

    def deadline(self) -> float | None:
        """Seconds since the run started until which undecided expectations are watched."""
        if self.injected is None:
            return None
        ends = [self.injected + s.rule.within for s in self.seen
                if s.rule.expected and s.rule.within is not None and s.first_firing is None]
        ends += [(self.reverted or self.bus.elapsed()) + s.rule.resolves_within
                 for s in self.seen if s.rule.expected and s.rule.resolves_within is not None]
        return max(ends, default=None)

    async def settle(self) -> None:
        """The faults are reverted: watch until every expectation is decided or past its
        deadline (and one more poll, for an alert that fired just before it)."""
        while not all(self._decided(s) for s in self.seen):
            deadline = self.deadline()
            if deadline is None or self.bus.elapsed() > deadline + self.detection.every:
                return
            await self.bus.clock.sleep(min(0.1, self.detection.every))

    async def stop(self) -> None:
        """Stop polling: before the declared services stop (the source may be one of them, and
        its going away is the end of the watch, not a gap in it)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def finish(self, outcome: tuple[ExitCode, str]) -> tuple[ExitCode, str]:
        """Stop polling, judge, report; the run's outcome with detection's verdict joined."""
        await self.stop()
        self.coverage.close(self.injected)
        self.verdicts = [self._judge(s) for s in self.seen]
        for seen, verdict in zip(self.seen, self.verdicts, strict=True):
            self.bus.emit("alert.measured", **seen.record(self.injected, self.reverted),
                          **self.coverage.record(), status=verdict.status.value, source=self.source.shown)
            self.bus.emit("check.evaluated", phase="detection", verdict=verdict.as_dict())
        passed = all(v.passed for v in self.verdicts)
        self.bus.emit("phase.finished", phase="detection", passed=passed)
        code, _ = outcome
        if code is not ExitCode.OK or passed:
            return outcome
        failed = "; ".join(f"{v.check.text}: {v.status.value} ({v.reason})"
                           for v in self.verdicts if not v.passed)
        if any(v.status is Status.FAIL for v in self.verdicts):
            return ExitCode.DEVIATED, f"monitoring did not behave as expected: {failed}"
        return ExitCode.INVALID, f"detection could not be judged: {failed}"

    def _judge(self, seen: Seen) -> Verdict:
        rule = seen.rule
        within = rule.within or 0.0
        text = (f"{rule.text} fires within {format_duration(within)}" if rule.expected
                else f"{rule.text} never fires")
        status, value, reason = self._expected(seen, within) if rule.expected else \
            self._forbidden(seen)
        return Verdict(Check(text, "alert", "detection", "<=", within), status, value,
                       self.polls, within, reason, self.source.shown)

    def _forbidden(self, seen: Seen) -> Outcome:
        """Fired: FAIL, whatever else happened. Not seen: only as good as the coverage."""
        if seen.first_firing is not None:
            return Status.FAIL, None, f"fired at {seen.first_firing:.1f}s: {_labels(seen.labels)}"
        if self.coverage.answered is None:
            return Status.ERROR, None, f"the source never answered: {self.coverage.last_error}"
        if gap := self.coverage.gap_over(0.0, math.inf):
            return Status.ERROR, None, f"not seen firing, but it could have fired unseen: {gap}"
        return Status.PASS, None, ""

    def _expected(self, seen: Seen, within: float) -> Outcome:
        rule, injected = seen.rule, self.injected
        if seen.before_injection is not None:
            return Status.INVALID, None, ("already firing before the first injection "
                                          f"({_labels(seen.before_injection)}): it proves nothing")
        if injected is None:
            return Status.NO_DATA, None, "nothing was injected"
        if gap := next((g for g in self.coverage.gaps if g.covers(injected)), None):
            # already firing or not, when the fault began: nothing after it can tell
            return Status.ERROR, None, f"could not see alerts when the fault began: {gap}"
        detect = None if seen.first_firing is None else round(seen.first_firing - injected, 3)
        if detect is None or detect > within:
            why = (f"did not fire within {format_duration(within)} of the first injection"
                   if detect is None else f"fired {format_duration(detect)} after the first "
                   "injection, later than allowed")
            return _unless_hidden(Status.FAIL, detect, why,
                                  self.coverage.gap_over(injected, injected + within))
        if rule.resolves_within is not None:
            after = None if seen.resolved is None or self.reverted is None else (
                seen.resolved - self.reverted)
            if after is None or after > rule.resolves_within:
                since = injected if self.reverted is None else self.reverted
                return _unless_hidden(
                    Status.FAIL, detect, "did not resolve within "
                    f"{format_duration(rule.resolves_within)} of the last revert",
                    self.coverage.gap_over(since, since + rule.resolves_within))
        # a silenced or inhibited alert fired, but paged nobody: say so
        note = f"{seen.state}: fired, but nobody was notified" if seen.state in (
            "silenced", "inhibited") else ""
        return Status.PASS, detect, note


def _unless_hidden(status: Status, value: float | None, why: str, gap: Gap | None) -> Outcome:
    """What was not seen may have happened in a gap in coverage: then we cannot know."""
    if gap is None:
        return status, value, why
    return Status.ERROR, value, f"{why} as far as seen, but it could have happened unseen: {gap}"


def _labels(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"
