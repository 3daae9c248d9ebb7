"""Game-day scheduling decisions and Argo export as plain functions of their input.

The scheduler decides on an injected clock (`Scheduler.due(now)`), so cron in a time zone,
DST changes, missed slots and overlap are checked on fixed instants. The Argo export is a list
of manifests built from a game-day file: its DAG order, stop rule and schedule are checked here
without a cluster (tests/gameday validates the same documents against Argo's schema).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from chaos.gameday.argo import manifests
from chaos.gameday.schedule import Scheduler, Slots, describe_slot, until
from chaos.model.gameday import GameDay, Schedule, load_gameday
from tests.conftest import ROOT

WEEKLY = ROOT / "gamedays" / "checkout-weekly.yaml"
LOCAL_DEMO = ROOT / "gamedays" / "local-demo.yaml"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("cron", "zone", "after", "slot"), [
    ("0 10 * * TUE", "Europe/Berlin", "2026-03-30 00:00", "2026-03-31 08:00"),  # CEST
    ("0 10 * * TUE", "Europe/Berlin", "2026-01-05 00:00", "2026-01-06 09:00"),  # CET
    ("30 2 * * *", "Europe/Berlin", "2026-03-28 12:00", "2026-03-29 01:00"),  # spring gap
    ("*/15 * * * *", "UTC", "2026-01-01 10:07", "2026-01-01 10:15"),
    ("0 9 1 * *", "America/New_York", "2026-01-15 00:00", "2026-02-01 14:00"),
])
def test_cron_fires_in_the_game_days_time_zone(cron: str, zone: str, after: str,
                                               slot: str) -> None:
    assert Slots(Schedule(cron, zone)).after(utc(after)) == utc(slot)


def test_a_repeated_autumn_hour_runs_once_unless_every_hour_is_asked() -> None:
    once = Slots(Schedule("30 2 * * *", "Europe/Berlin"))
    first = once.after(utc("2026-10-24 12:00"))
    assert first == utc("2026-10-25 00:30")  # 02:30 CEST, the first of the two
    assert once.after(first) == utc("2026-10-26 01:30")
    hourly = Slots(Schedule("30 * * * *", "Europe/Berlin"))
    assert hourly.after(utc("2026-10-25 00:30")) == utc("2026-10-25 01:30")  # 02:30 CET again


def gameday(cron: str = "0 * * * *") -> GameDay:
    return dataclasses.replace(load_gameday(LOCAL_DEMO), schedule=Schedule(cron))


async def never_started(gd: GameDay) -> int:
    raise AssertionError("due() decides, it does not start")


def scheduler_at(now: datetime, gd: GameDay, **options: float) -> Scheduler:
    return Scheduler([gd], never_started, clock=lambda: now, **options)


def test_a_slot_that_comes_due_starts_once() -> None:
    gd = gameday()
    scheduler = scheduler_at(utc("2026-01-01 09:59"), gd)
    assert scheduler.next_wake() == utc("2026-01-01 10:00")
    assert scheduler.due(utc("2026-01-01 09:59:59")) == []
    decisions = scheduler.due(utc("2026-01-01 10:00:05"))
    assert [(d.action, d.slot) for d in decisions] == [("start", utc("2026-01-01 10:00"))]
    assert scheduler.due(utc("2026-01-01 10:00:06")) == []
    assert scheduler.next_wake() == utc("2026-01-01 11:00")


def test_slots_past_the_starting_deadline_are_missed_not_run_late() -> None:
    scheduler = scheduler_at(utc("2026-01-01 09:59"), gameday(), starting_deadline=60)
    decisions = scheduler.due(utc("2026-01-01 12:00:30"))
    assert [(d.action, d.slot.hour) for d in decisions] == [
        ("missed", 10), ("missed", 11), ("start", 12)]
    assert decisions[0].why.startswith("2:00:30 late")


def test_a_slot_while_the_game_day_still_runs_is_missed() -> None:
    gd = gameday()
    scheduler = scheduler_at(utc("2026-01-01 09:59"), gd)
    scheduler.running[id(gd)] = None  # type: ignore[assignment]  # still running
    decisions = scheduler.due(utc("2026-01-01 10:00"))
    assert [(d.action, d.why) for d in decisions] == [
        ("missed", "the previous run was still running")]
    scheduler.finished(gd)
    assert [d.action for d in scheduler.due(utc("2026-01-01 11:00"))] == ["start"]


def test_run_now_makes_the_first_slot_the_present() -> None:
    now = utc("2026-01-01 09:17")
    scheduler = Scheduler([gameday()], never_started, clock=lambda: now, run_now=True)
    assert [(d.action, d.slot) for d in scheduler.due(now)] == [("start", now)]


def test_a_game_day_without_a_schedule_cannot_be_scheduled() -> None:
    with pytest.raises(ValueError, match="has no schedule"):
        Scheduler([load_gameday(LOCAL_DEMO)], never_started)


@pytest.mark.parametrize(("schedule", "text"), [
    (Schedule("0 10 * * TUE", "Europe/Berlin"), "2026-03-31 10:00 CEST (08:00 UTC)"),
    (Schedule("0 10 * * TUE", "UTC"), "2026-03-31 08:00 UTC"),
    (None, "2026-03-31 08:00 UTC"),
])
def test_slots_are_described_in_local_and_utc_time(schedule: Schedule | None,
                                                   text: str) -> None:
    assert describe_slot(utc("2026-03-31 08:00"), schedule) == text


@pytest.mark.parametrize(("seconds", "text"), [(0, "0:00:00"), (-5, "0:00:00"),
                                               (3725, "1:02:05"), (90000, "1 day, 1:00:00")])
def test_until_is_hours_minutes_seconds_never_negative(seconds: int, text: str) -> None:
    now = utc("2026-01-01 00:00")
    assert until(now + timedelta(seconds=seconds), now) == text


def kinds(docs: list[dict[str, object]]) -> list[object]:
    return [d["kind"] for d in docs]


def test_a_scheduled_game_day_becomes_a_cron_workflow_in_its_time_zone() -> None:
    docs = manifests(load_gameday(WEEKLY), namespace="ops")
    cron = docs[-1]
    assert cron["kind"] == "CronWorkflow"
    spec = cron["spec"]
    assert (spec["schedules"], spec["timezone"], spec["concurrencyPolicy"]) == (
        ["0 10 * * TUE"], "Europe/Berlin", "Forbid")
    assert {"Role", "RoleBinding", "ServiceAccount", "ConfigMap"} <= set(kinds(docs))
    assert all(d["metadata"].get("namespace") in (None, "ops") for d in docs)


def test_an_unscheduled_game_day_becomes_one_workflow() -> None:
    docs = manifests(load_gameday(LOCAL_DEMO))
    assert docs[-1]["kind"] == "Workflow"
    assert docs[-1]["metadata"]["generateName"].endswith("-")


def dag(docs: list[dict[str, object]]) -> list[dict[str, str]]:
    last = docs[-1]
    spec = last["spec"].get("workflowSpec", last["spec"])
    return spec["templates"][0]["dag"]["tasks"]


def test_experiments_run_in_file_order_and_stop_at_the_first_abort() -> None:
    tasks = dag(manifests(load_gameday(WEEKLY)))
    assert [t["name"] for t in tasks] == ["e01-checkout-slo", "e02-cpu-saturation"]
    assert "depends" not in tasks[0]
    assert tasks[1]["depends"] == "(e01-checkout-slo.Succeeded || e01-checkout-slo.Failed)"
    assert tasks[1]["when"] == ("{{tasks.e01-checkout-slo.exitCode}} != 4 && "
                                "{{tasks.e01-checkout-slo.exitCode}} != 5 && "
                                "{{tasks.e01-checkout-slo.exitCode}} != 130 && "
                                "{{tasks.e01-checkout-slo.exitCode}} != 143")


@pytest.mark.parametrize(("stop_on", "depends", "has_when"), [
    ("first_failure", "e01-checkout-slo.Succeeded", False),
    ("never", "(e01-checkout-slo.Succeeded || e01-checkout-slo.Failed)", True),
])
def test_stop_on_decides_what_the_next_task_waits_for(stop_on: str, depends: str,
                                                     has_when: bool) -> None:
    gd = dataclasses.replace(load_gameday(WEEKLY), stop_on=stop_on)
    second = dag(manifests(gd))[1]
    assert second["depends"] == depends
    assert ("when" in second) is has_when


def test_each_task_runs_its_experiment_with_its_own_vars_and_journal() -> None:
    docs = manifests(load_gameday(WEEKLY))
    spec = docs[-1]["spec"]["workflowSpec"]
    second = next(t for t in spec["templates"] if t["name"] == "e02-cpu-saturation")
    args = second["container"]["args"]
    assert args[0] == "run" and args[1].endswith("experiments/cpu-saturation.yaml")
    assert "--journal" in args
    assert args[args.index("--journal") + 1].endswith("/journals/e02-cpu-saturation.json")
    assert "port=18291" in args
    assert spec["onExit"] == "report"
