"""The event catalogue: the only way reporters, the live view and the journal learn what happens.

The engine fires events; subscribers (journal recorder, terminal view, metrics) listen and never
call back into the engine. Each event has a documented name and fields:

    run.started          run, title, source, seed, dry_run
    service.started      service, pid, argv, log
    service.ready        service, after (seconds)
    service.stopped      service, returncode
    service.exited       service, returncode, ready (false: before it was ready), log - it
                         exited on its own, not stopped by the run
    phase.started        phase (before | during | after; `detection` only finishes)
    phase.finished       phase, passed
    probe.sampled        probe, ok, latency, detail, at (seconds since run start, when sent)
    check.evaluated      phase, verdict (as dict)
    fault.planned        fault, type, targets (labels)
    fault.injected       fault, type, injection, target, deadline (epoch), duration
    fault.failed         fault, target, error
    fault.reverted       fault, injection, target, outcome, by, at (seconds since run start
                         when it was reverted: earlier than `t` when someone else - `chaos
                         stop`, the watchdog - reverted it and the ledger says so)
    fault.revert_failed  fault, injection, target, error
    guardrail.breached   check, verdict
    guardrail.failed     error (the guardrails themselves broke: the run reverts and aborts)
    guardrail.evaluated  check, breached, verdict (as dict: the breach, or the judgement that
                         came closest to a breach; None when never measured) - once per
                         `during.abort` entry when the during phase ends
    run.interrupted      signal
    run.recovered        after (seconds from the last revert until every probe answers ok)
    run.detected         after (seconds from the first injection to the first failing `during`
                         check), check
    traffic.second       t (second since traffic started), requests, errors, p50, p95, p99, lag_p99
                         (seconds; requests that completed in that second)
    traffic.tick         t (tick start, seconds since traffic started: 4.3), requests, errors, p50,
                         p95, p99: one 100 ms tick of the first minute of traffic, before
                         its second (a short run's journal keeps them as `fine_series`)
    capacity.measured    search (baseline | under_fault: the second search, faults held),
                         sustainable_rate, broken_at (req/s or null), broken_by (the stop
                         condition), invalid (why the search could not decide, or null), steps
                         (rate, requests, errors, p99, status: held | broken | invalid), faults
                         (under_fault only: the faults injected during it)
    traffic.stage        phase, stage (name), rate, requests, errors, timeouts, p99: a
                         judged window that spans several stages of a load profile, per stage
    activity.started     phase (method | rollback), activity, type (action | probe), background
                         (Chaos Toolkit experiments, chaos.ctk)
    activity.finished    phase, activity, type, status (succeeded | failed | interrupted),
                         duration (seconds), error
    alert.observed       alert (the expectation), state (pending | firing | silenced | inhibited
                         | resolved), labels, at (seconds since run start; chaos.runner.detection)
    alert.poll_failed    source, error, waiting (the first failure of a series; waiting: before the
                         source first answered and the first injection, not an error)
    alert.measured       alert, expected, matchers, within, resolves_within, first_pending,
                         first_firing, resolved, time_to_detect (seconds from the first injection),
                         time_to_resolve (from the last revert), labels, state,
                         firing_before_injection, source_answered, gaps, status, source
    run.finished         run, verdict, exit_code, reason

Every event carries `t`: seconds since the run started (monotonic), and `ts`: wall-clock epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chaos.clock import SYSTEM_CLOCK, Clock
from chaos.model.redaction import NOTHING, Redactor

log = logging.getLogger(__name__)

CATALOGUE = frozenset({
    "run.started", "service.started", "service.ready", "service.stopped", "service.exited",
    "phase.started",
    "phase.finished", "probe.sampled", "check.evaluated", "fault.planned", "fault.injected",
    "fault.failed", "fault.reverted", "fault.revert_failed", "guardrail.breached", "guardrail.failed",
    "guardrail.evaluated",
    "run.interrupted", "run.recovered", "run.finished", "run.detected", "traffic.second",
    "traffic.tick", "traffic.stage", "capacity.measured",
    "activity.started", "activity.finished", "alert.observed", "alert.poll_failed",
    "alert.measured",
})


@dataclass(frozen=True)
class Event:
    name: str
    t: float
    ts: float
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.name, "t": round(self.t, 4), "ts": self.ts, **self.data}


Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self, redactor: Redactor = NOTHING, clock: Clock = SYSTEM_CLOCK) -> None:
        self._subscribers: list[Subscriber] = []
        self.clock = clock
        self.started = clock.monotonic()
        self.redactor = redactor  # secrets are masked before any subscriber sees an event

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def elapsed(self, at: float | None = None) -> float:
        return (self.clock.monotonic() if at is None else at) - self.started

    def emit(self, name: str, **data: Any) -> Event:
        if name not in CATALOGUE:
            raise ValueError(f"undocumented event {name!r}; add it to the catalogue")
        event = Event(name, self.elapsed(), self.clock.time(),
                      self.redactor.data(data) if self.redactor else data)
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # a broken reporter must not break a run, nor hide silently
                log.exception("event subscriber %r failed on %s", subscriber, name)
        return event
