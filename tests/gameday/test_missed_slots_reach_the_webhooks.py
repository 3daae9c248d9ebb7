"""Missed slots, end to end: the scheduler's loop on an injected clock, with the reporter that
`chaos gameday schedule` uses, delivering `gameday.missed` to a real HTTP receiver on 127.0.0.1.

Both kinds of miss are driven: a slot that comes while the same game day still runs, and slots
left behind while the machine slept (the clock jumps past them by more than the deadline).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaos.gameday.schedule import MissReporter, Scheduler
from chaos.model.gameday import GameDay, load_gameday
from tests.gameday.conftest import VirtualTime, WebhookServer, write_gameday


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 1, 6, hour, minute, second, tzinfo=UTC)


def test_missed_slots_are_printed_and_posted(tmp_path: Path, webhooks: WebhookServer) -> None:
    path = write_gameday(tmp_path, f"""
title: Ten-minutely
schedule: {{cron: "*/10 * * * *", timezone: UTC}}
experiments: ["{{experiments}}/quickstart.yaml"]
notify:
  - {{webhook: "{webhooks.url('/hook')}", events: [missed]}}
  - {{webhook: "{webhooks.url('/broken')}", events: [missed]}}
""")
    gameday = load_gameday(str(path), {})
    printed: list[str] = []
    warnings: list[str] = []

    async def scenario() -> list[str]:
        time = VirtualTime(at(9, 55))
        release = asyncio.Event()
        started: list[str] = []

        async def run(gd: GameDay) -> int:
            started.append(f"{time.now:%H:%M}")
            await release.wait()  # the first run lasts until the test releases it
            return 0

        misses = MissReporter(printed.append, warn=warnings.append)
        scheduler = Scheduler([gameday], run, clock=time.clock, sleep=time.sleep,
                              report=misses, starting_deadline=60, max_sleep=30)
        serving = asyncio.ensure_future(scheduler.serve())
        await time.advance_to(at(10, 0, 1))  # 10:00 starts
        await time.advance_to(at(10, 10, 5))  # 10:10: still running
        time.now = at(10, 35)  # the machine slept through 10:20 and 10:30
        await time.advance_to(at(10, 35))
        release.set()
        await time.advance_to(at(10, 36))
        scheduler.stop()
        await time.advance_to(at(10, 37))
        await asyncio.wait_for(serving, 10)
        await asyncio.wait_for(misses.drain(), 15)
        return started

    started = asyncio.run(scenario())
    assert started == ["10:00"]
    # each POST has its own thread: they may arrive in any order
    received: list[dict[str, Any]] = sorted(webhooks.events("/hook"), key=lambda e: e["slot"])
    assert [(e["event"], e["slot"]) for e in received] == [
        ("gameday.missed", "2026-01-06T10:10:00+00:00"),
        ("gameday.missed", "2026-01-06T10:20:00+00:00"),
        ("gameday.missed", "2026-01-06T10:30:00+00:00")]
    assert "still running" in received[0]["reason"]
    assert received[1]["reason"].startswith("0:15:00 late") and "slept" in received[1]["reason"]
    for event in received:
        assert event["title"] == "Ten-minutely" and event["source"] == str(path)
        assert event["tool"]["name"] == "chaos" and isinstance(event["sent"], float)
    assert printed == [
        "missed: Ten-minutely at 2026-01-06 10:10 UTC: the previous run was still running",
        "missed: Ten-minutely at 2026-01-06 10:20 UTC: 0:15:00 late (the scheduler was not "
        "running, or the machine slept)",
        "missed: Ten-minutely at 2026-01-06 10:30 UTC: 0:05:00 late (the scheduler was not "
        "running, or the machine slept)"]
    # a webhook that answers 500 is reported, once per miss, and changes nothing else
    assert len(webhooks.events("/broken")) == 3
    assert len(warnings) == 3 and all("HTTP 500" in w for w in warnings)
