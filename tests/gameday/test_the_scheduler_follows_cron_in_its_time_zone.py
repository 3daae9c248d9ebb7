"""The scheduler with an injected clock: cron read in the game day's time zone across both DST
changes of Europe/Berlin, no overlapping runs, missed slots reported - without waiting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chaos.gameday.schedule import Decision, Scheduler, Slots
from chaos.model.gameday import GameDay, Schedule, Step
from tests.gameday.conftest import VirtualTime


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def day(cron: str, tz: str = "Europe/Berlin", title: str = "gd") -> GameDay:
    return GameDay(title=title, source=f"{title}.yaml", source_hash="", steps=(Step(()),),
                   schedule=Schedule(cron, tz))


def fires(cron: str, start: datetime, count: int, tz: str = "Europe/Berlin") -> list[datetime]:
    slots, result, t = Slots(Schedule(cron, tz)), [], start
    for _ in range(count):
        t = slots.after(t)
        result.append(t)
    return result


def test_tuesday_ten_oclock_berlin_moves_in_utc_with_summer_time() -> None:
    # 2026: summer time starts Sunday 29 March, ends Sunday 25 October (last Sundays)
    spring = fires("0 10 * * TUE", utc(2026, 3, 20), 2)
    assert spring == [utc(2026, 3, 24, 9), utc(2026, 3, 31, 8)]  # CET, then CEST
    autumn = fires("0 10 * * TUE", utc(2026, 10, 16), 2)
    assert autumn == [utc(2026, 10, 20, 8), utc(2026, 10, 27, 9)]  # CEST, then CET


def test_a_time_skipped_in_spring_runs_once_right_after_the_change() -> None:
    # 02:30 does not exist on 29 March 2026 in Berlin (02:00 -> 03:00)
    assert fires("30 2 * * *", utc(2026, 3, 28, 12), 3) == [
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST, the first minute after the gap
        utc(2026, 3, 30, 0, 30), utc(2026, 3, 31, 0, 30)]


def test_a_time_repeated_in_autumn_runs_once() -> None:
    # 02:30 happens twice on 25 October 2026 (CEST, then CET): one game day, not two
    assert fires("30 2 * * *", utc(2026, 10, 24, 12), 3) == [
        utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30), utc(2026, 10, 27, 1, 30)]


def test_an_hourly_schedule_runs_in_both_repeated_hours() -> None:
    assert fires("15 * * * *", utc(2026, 10, 24, 23, 30), 4) == [
        utc(2026, 10, 25, 0, 15),  # 02:15 CEST
        utc(2026, 10, 25, 1, 15),  # 02:15 CET: a different real hour
        utc(2026, 10, 25, 2, 15), utc(2026, 10, 25, 3, 15)]


def scheduler_at(now: datetime, *days: GameDay, **kwargs: object) -> Scheduler:
    async def never(gd: GameDay) -> int:
        raise AssertionError("due() starts nothing itself")

    return Scheduler(list(days), never, clock=lambda: now, **kwargs)  # type: ignore[arg-type]


def test_a_slot_long_past_is_reported_missed_not_run_late() -> None:
    gd = day("0 * * * *", "UTC")
    s = scheduler_at(utc(2026, 1, 1, 9, 30), gd, starting_deadline=60)
    assert s.next[id(gd)] == utc(2026, 1, 1, 10)
    # the machine slept from 09:30 to 12:20: 10:00, 11:00 and 12:00 were missed
    decisions = s.due(utc(2026, 1, 1, 12, 20))
    assert [(d.action, d.slot.hour) for d in decisions] == [
        ("missed", 10), ("missed", 11), ("missed", 12)]
    assert all("late" in d.why for d in decisions)
    assert s.next[id(gd)] == utc(2026, 1, 1, 13)
    # woken within the deadline: it runs
    assert [d.action for d in s.due(utc(2026, 1, 1, 13, 0, 30))] == ["start"]


def test_a_slot_while_the_same_game_day_runs_is_missed_and_others_still_start() -> None:
    slow, other = day("*/10 * * * *", "UTC", "slow"), day("*/10 * * * *", "UTC", "other")
    s = scheduler_at(utc(2026, 1, 1, 9, 55), slow, other)
    first = s.due(utc(2026, 1, 1, 10, 0))
    assert [(d.gameday.title, d.action) for d in first] == [("slow", "start"), ("other", "start")]
    s.running[id(slow)] = object()  # type: ignore[assignment]  # still running at 10:10
    second = s.due(utc(2026, 1, 1, 10, 10))
    assert [(d.gameday.title, d.action) for d in second] == [("slow", "missed"),
                                                             ("other", "start")]
    assert "still running" in second[0].why
    s.finished(slow)
    assert [d.action for d in s.due(utc(2026, 1, 1, 10, 20))] == ["start", "start"]


def test_the_loop_runs_on_schedule_without_overlap_and_reports_misses() -> None:
    async def scenario() -> tuple[list[str], list[Decision]]:
        time = VirtualTime(utc(2026, 3, 28, 23, 0))  # Saturday night, before the spring change
        gd = day("0,30 * * * *")  # every half hour, Berlin time
        log: list[str] = []
        release = asyncio.Event()

        async def run(g: GameDay) -> int:
            log.append(f"start {time.now:%H:%M}")
            if len(log) == 1:
                await release.wait()  # the first run lasts until the test releases it
            log.append(f"end {time.now:%H:%M}")
            return 0

        reported: list[Decision] = []
        s = Scheduler([gd], run, clock=time.clock, sleep=time.sleep, report=reported.append,
                      max_sleep=300)
        serving = asyncio.ensure_future(s.serve())
        await time.advance_to(utc(2026, 3, 28, 23, 30))  # 00:30 Berlin: the first run starts
        await time.advance_to(utc(2026, 3, 29, 0, 31))  # 01:00 and 01:30 come while it runs
        release.set()
        await time.advance_to(utc(2026, 3, 29, 0, 31))  # it ends now
        await time.advance_to(utc(2026, 3, 29, 1, 0, 10))  # 03:00 CEST (02:xx never happened)
        s.stop()
        await time.advance_to(utc(2026, 3, 29, 1, 5))
        await asyncio.wait_for(serving, 5)
        return log, reported

    log, reported = asyncio.run(scenario())
    assert log == ["start 23:30", "end 00:31", "start 01:00", "end 01:00"]
    missed = [(d.slot.strftime("%H:%M"), d.why) for d in reported if d.action == "missed"]
    assert [m[0] for m in missed] == ["00:00", "00:30"]  # 01:00 and 01:30 Berlin (UTC shown)
    assert all("still running" in why for _, why in missed)


def test_game_day_files_without_a_schedule_are_refused(tmp_path: Path) -> None:
    gd = GameDay(title="x", source="x.yaml", source_hash="", steps=())
    with pytest.raises(ValueError, match="no schedule"):
        scheduler_at(utc(2026, 1, 1), gd)
