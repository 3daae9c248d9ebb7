"""The detection watch: polls the alerts of `detection:` and times what monitoring noticed.

It learns about the faults from the event bus (fault.injected, fault.reverted) and reports what it
sees as events (alert.observed, alert.poll_failed, alert.measured, and check.evaluated in a
`detection` phase), so the engine only starts it, waits for its deadlines after the faults are
reverted, and asks for its judgement. Polling runs in its own task, bounded by the source's
timeout: a hung Alertmanager never delays an injection or a revert.

Times are seconds since the run started, like injections'. A state change is placed between the
poll that saw it and the one before; when the source says when the alert became active
(Alertmanager's startsAt, Prometheus' activeAt), that moment is used within those bounds, so the
time to detect is exact up to the source's own scrape and evaluation intervals.

Verdicts: an expected alert already firing before the first injection proves nothing (INVALID);
one not firing within `within` of the first injection, or not resolved within `resolves_within`
of the last revert, FAILs, as does a forbidden alert that fires at any time of the run. A failed
poll turns a verdict that rests on not having seen something into ERROR: we cannot know.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from chaos.errors import ExitCode
from chaos.model.experiment import AlertRule, Detection
from chaos.runner.events import Event, EventBus
from chaos.slo.alerts import Alert, AlertSource, QueryFailed, matches
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


class AlertWatch:
    def __init__(self, detection: Detection, bus: EventBus) -> None:
        self.detection = detection
        self.bus = bus
        self.source = AlertSource.from_spec(detection.source, detection.endpoint)
        self.seen = [Seen(rule) for rule in detection.rules]
        self.polls = 0
        self.failures: list[tuple[float, str]] = []  # (t, error)
        self.injected: float | None = None  # first injection, seconds since run start
        self.reverted: float | None = None  # last revert
        self.verdicts: list[Verdict] = []
        self._last_poll: float | None = None
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

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.detection.every)
            await self._poll()

    async def _poll(self) -> None:
        try:
            alerts = await self.source.alerts()
        except QueryFailed as exc:
            now = self.bus.elapsed()
            if not self.failures or self.failures[-1][0] < (self._last_poll or 0):
                self.bus.emit("alert.poll_failed", source=self.source.shown, error=str(exc))
            self.failures.append((now, str(exc)))
            return
        now = self.bus.elapsed()
        self.polls += 1
        for seen in self.seen:
            self._update(seen, [a for a in alerts if matches(seen.rule.matchers, a.labels)], now)
        self._last_poll = now

    def _when(self, alert: Alert, now: float, rule: AlertRule) -> float:
        """When it happened: between the last poll and this one; where the source says if it
        says (and never before the first injection, for what only counts after it)."""
        low = self._last_poll if self._last_poll is not None else now
        if rule.expected and self.injected is not None:
            low = max(low, self.injected)
        if alert.since is None:
            return round(now, 3)
        at = now - (time.time() - alert.since)
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
            await asyncio.sleep(min(0.1, self.detection.every))

    async def finish(self, outcome: tuple[ExitCode, str]) -> tuple[ExitCode, str]:
        """Stop polling, judge, report; the run's outcome with detection's verdict joined."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.verdicts = [self._judge(s) for s in self.seen]
        for seen, verdict in zip(self.seen, self.verdicts, strict=True):
            self.bus.emit("alert.measured", **seen.record(self.injected, self.reverted),
                          status=verdict.status.value, source=self.source.shown)
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
        rule, shown = seen.rule, self.source.shown
        within = rule.within or 0.0
        text = (f"{rule.text} fires within {format_duration(within)}" if rule.expected
                else f"{rule.text} never fires")
        check = Check(text, "alert", "detection", "<=", within)
        error = self.failures[-1][1] if self.failures else ""

        def verdict(status: Status, value: float | None, reason: str = "") -> Verdict:
            """Not having seen something means little if some polls failed: ERROR."""
            if error:
                status, reason = Status.ERROR, f"{len(self.failures)} poll(s) failed: {error}"
            return Verdict(check, status, value, self.polls, within, reason, shown)

        if not rule.expected:
            if seen.first_firing is None:
                return verdict(Status.PASS, None)
            return Verdict(check, Status.FAIL, None, self.polls, 0.0,
                           f"fired at {seen.first_firing:.1f}s: {_labels(seen.labels)}", shown)
        if seen.before_injection is not None:
            return Verdict(check, Status.INVALID, None, self.polls, within,
                           "already firing before the first injection "
                           f"({_labels(seen.before_injection)}): it proves nothing", shown)
        if self.injected is None:
            return verdict(Status.NO_DATA, None, "nothing was injected")
        if seen.first_firing is None:
            return verdict(Status.FAIL, None, f"did not fire within {format_duration(within)} "
                                              "of the first injection")
        detect = round(seen.first_firing - self.injected, 3)
        if detect > within:
            return Verdict(check, Status.FAIL, detect, self.polls, within,
                           f"fired {format_duration(detect)} after the first injection, later "
                           "than allowed", shown)
        if rule.resolves_within is not None:
            after = None if seen.resolved is None or self.reverted is None else (
                seen.resolved - self.reverted)
            if after is None or after > rule.resolves_within:
                return verdict(Status.FAIL, detect, "did not resolve within "
                               f"{format_duration(rule.resolves_within)} of the last revert")
        # a silenced or inhibited alert fired, but paged nobody: say so
        note = f"{seen.state}: fired, but nobody was notified" if seen.state in (
            "silenced", "inhibited") else ""
        return Verdict(check, Status.PASS, detect, self.polls, within, note, shown)


def _labels(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"
