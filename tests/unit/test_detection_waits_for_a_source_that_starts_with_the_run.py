"""The detection watch, in-process on a manual clock, against a scripted alert source that is down
for chosen stretches of the run: polls that fail before the source first answers and before
the first injection are waiting for it, not errors; a source that has not answered when the
fault begins makes detection ERROR; a later gap in coverage makes ERROR only the verdicts
whose outcome could hide in it, and leaves what successful polls decided alone."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from chaos.errors import ExitCode
from chaos.model.experiment import AlertRule, Detection
from chaos.runner.detection import AlertWatch
from chaos.runner.events import Event, EventBus
from chaos.slo.alerts import Alert, QueryFailed
from chaos.slo.checks import Status
from chaos.testing import ManualClock

EVERY = 0.25
INJECT, REVERT = 2.0, 4.0  # seconds since the run started


@dataclass
class ScriptedSource:
    """Down (connection refused) in the `down` stretches; each alert fires in its stretch."""

    bus: EventBus
    down: list[tuple[float, float]] = field(default_factory=list)
    firing: dict[str, tuple[float, float]] = field(default_factory=dict)
    shown: str = "alertmanager:scripted"

    async def alerts(self) -> list[Alert]:
        now = self.bus.elapsed()
        if any(start <= now < end for start, end in self.down):
            raise QueryFailed("connection refused")
        return [Alert({"alertname": name}, "firing") for name, (start, end) in
                self.firing.items() if start <= now < end]


def expect(name: str, within: float, resolves_within: float | None = None) -> AlertRule:
    return AlertRule((("alertname", "=", name),), True, within, resolves_within)


def forbid(name: str) -> AlertRule:
    return AlertRule((("alertname", "=", name),), False)


@dataclass
class Watched:
    watch: AlertWatch
    events: list[Event]
    outcome: tuple[ExitCode, str]

    def status(self, name: str) -> Status:
        (verdict,) = [v for v in self.watch.verdicts if f"alertname={name}}}" in v.check.text]
        return verdict.status

    def reason(self, name: str) -> str:
        (verdict,) = [v for v in self.watch.verdicts if f"alertname={name}}}" in v.check.text]
        return verdict.reason

    def data(self, event: str) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.name == event]


def watched(*rules: AlertRule, down: list[tuple[float, float]],
            firing: dict[str, tuple[float, float]] | None = None,
            inject: float | None = INJECT) -> Watched:
    clock = ManualClock()

    async def run() -> Watched:
        bus = EventBus(clock=clock)
        events: list[Event] = []
        bus.subscribe(events.append)
        source = ScriptedSource(bus, down, firing or {})
        watch = AlertWatch(Detection("alertmanager", {"url": "http://unused"}, EVERY, rules),
                           bus, source=source)
        await watch.start()
        if inject is not None:
            await clock.sleep(inject)
            bus.emit("fault.injected", fault="f", type="process.suspend", injection="r.0.0",
                     target="t", duration=REVERT - inject, deadline=0)
            await clock.sleep(REVERT - inject)
            bus.emit("fault.reverted", fault="f", injection="r.0.0", target="t",
                     outcome="reverted", by="runner")
        else:
            await clock.sleep(REVERT)
        await watch.settle()
        await clock.sleep(1.0)
        outcome = await watch.finish((ExitCode.OK, ""))
        return Watched(watch, events, outcome)

    return asyncio.run(clock.run(run()))


def test_polls_before_the_source_first_answers_are_waiting_not_errors() -> None:
    w = watched(expect("Detected", 2.0), forbid("Paging"), down=[(0.0, 1.1)],
                firing={"Detected": (2.6, 9.0)})
    assert w.status("Detected") is Status.PASS
    assert w.status("Paging") is Status.PASS  # the source answered all run long after it started
    assert w.outcome == (ExitCode.OK, "")
    assert w.watch.coverage.waiting == 5 and w.watch.coverage.gaps == []
    (failed,) = w.data("alert.poll_failed")  # said once, as waiting
    assert failed["waiting"] is True and failed["error"] == "connection refused"
    (measured, _) = w.data("alert.measured")
    assert measured["source_answered"] == pytest.approx(1.25) and measured["gaps"] == []


def test_a_source_not_answering_when_the_fault_begins_is_an_error() -> None:
    w = watched(expect("Detected", 2.0), forbid("Paging"), down=[(0.0, 2.6)],
                firing={"Detected": (2.1, 9.0)})
    assert w.status("Detected") is Status.ERROR
    assert "could not see alerts when the fault began" in w.reason("Detected")
    assert w.status("Paging") is Status.ERROR
    assert w.outcome[0] is ExitCode.INVALID
    # waiting, then no longer: the fault began unseen
    assert [d["waiting"] for d in w.data("alert.poll_failed")] == [True, False]
    assert w.watch.coverage.gaps[0].start == 0.0


def test_a_source_that_never_answers_before_anything_is_injected_cannot_clear_a_forbid() -> None:
    w = watched(forbid("Paging"), expect("Detected", 1.0), down=[(0.0, 99.0)], inject=None)
    assert w.status("Paging") is Status.ERROR
    assert "never answered" in w.reason("Paging")
    assert w.status("Detected") is Status.NO_DATA


def test_a_gap_after_the_fault_began_errors_only_what_could_hide_in_it() -> None:
    w = watched(expect("SeenInTime", 2.0), expect("NeverFires", 5.0),
                expect("DecidedLate", 0.3), forbid("Paging"), down=[(3.1, 3.6)],
                firing={"SeenInTime": (2.6, 9.0)})
    # seen firing at 2.75 s, before the gap: decided
    assert w.status("SeenInTime") is Status.PASS
    # its window (2 s to 7 s) spans the gap: it could have fired and resolved there unseen
    assert w.status("NeverFires") is Status.ERROR
    assert "between 3.0s and 3.8s" in w.reason("NeverFires")  # between the polls that answered
    # its window (2 s to 2.3 s) ended before the gap: FAIL stands
    assert w.status("DecidedLate") is Status.FAIL
    assert w.status("Paging") is Status.ERROR
    assert "could have fired unseen" in w.reason("Paging")
    assert w.outcome[0] is ExitCode.DEVIATED  # a FAIL outweighs the errors
    (failed,) = w.data("alert.poll_failed")
    assert failed["waiting"] is False
    (gap,) = w.watch.coverage.gaps
    assert gap.start == pytest.approx(3.0) and gap.end == pytest.approx(3.75) and gap.polls == 2


def test_a_forbidden_alert_seen_firing_fails_whatever_the_gaps() -> None:
    w = watched(forbid("Paging"), down=[(0.0, 2.6)], firing={"Paging": (3.0, 3.5)})
    assert w.status("Paging") is Status.FAIL and w.outcome[0] is ExitCode.DEVIATED


def test_resolution_seen_in_time_stands_a_late_one_behind_a_gap_is_unknown() -> None:
    w = watched(expect("Resolves", 1.0, resolves_within=1.0),
                expect("ResolvesLate", 1.0, resolves_within=1.0),
                down=[(4.6, 5.3)],
                firing={"Resolves": (2.1, 4.3), "ResolvesLate": (2.1, 5.1)})
    assert w.status("Resolves") is Status.PASS  # seen resolved at 4.5 s, before the gap
    # resolved somewhere in the gap (4.5 s to 5.5 s): maybe in time (by 5 s), maybe not
    assert w.status("ResolvesLate") is Status.ERROR
    assert "did not resolve within 1s" in w.reason("ResolvesLate")


def test_without_failed_polls_the_verdicts_are_unchanged() -> None:
    w = watched(expect("Late", 1.0), forbid("Quiet"), down=[],
                firing={"Late": (3.6, 9.0)})
    assert w.status("Late") is Status.FAIL and w.status("Quiet") is Status.PASS
    assert w.outcome[0] is ExitCode.DEVIATED and w.data("alert.poll_failed") == []
