"""The foreground scheduler: game days on their cron schedules, never overlapping, misses reported.

Time is injected: `clock()` returns an aware datetime and `sleep(seconds)` waits, so tests drive
time (DST changes included) without waiting for it. The decisions live in `Scheduler.due(now)`,
a plain function of the clock; `serve` is the loop around it.

Rules (docs/gamedays.md):
- cron fields are read in the game day's time zone (croniter). A time skipped by a spring DST
  change runs at the first minute after it (02:30 -> 03:00); a time repeated by an autumn change
  runs once, unless the hour field is `*` (then each real hour runs).
- A slot more than `starting_deadline` seconds in the past (the machine slept, the scheduler was
  stopped, a clock jumped) is reported as missed, not run late - like a CronJob's
  startingDeadlineSeconds.
- A slot that comes due while the same game day still runs is reported as missed (no overlap,
  no queue) - like concurrencyPolicy: Forbid.
- The loop never sleeps more than `max_sleep` at once: monotonic sleeps stop while a machine is
  suspended, so a wake-up is noticed within `max_sleep` of resuming.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from chaos.gameday.notify import Notifier
from chaos.model.gameday import GameDay, Schedule

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]


def system_clock() -> datetime:
    return datetime.now(UTC)


class Slots:
    """The instants a cron schedule fires, in UTC, after a given instant."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.zone = ZoneInfo(schedule.timezone)
        self.every_hour = schedule.cron.split()[1] == "*"

    def after(self, instant: datetime) -> datetime:
        from croniter import croniter

        it = croniter(self.schedule.cron, instant.astimezone(self.zone))
        for _ in range(1000):  # bounded: a repeated hour holds at most 60 candidates
            local: datetime = it.get_next(datetime)
            if self.every_hour or not _second_of_repeated(local):
                return local.astimezone(UTC)
        raise RuntimeError(f"no time matches {self.schedule.cron!r}")  # pragma: no cover


def _second_of_repeated(local: datetime) -> bool:
    """The wall time exists twice (autumn DST change) and this is the second one."""
    first, second = local.replace(fold=0), local.replace(fold=1)
    return first.utcoffset() != second.utcoffset() and local.utcoffset() == second.utcoffset()


@dataclass(frozen=True)
class Decision:
    gameday: GameDay
    slot: datetime  # UTC
    action: str  # "start" | "missed"
    why: str = ""


class Scheduler:
    def __init__(self, gamedays: Sequence[GameDay], start: Callable[[GameDay], Awaitable[int]],
                 *, clock: Clock = system_clock, sleep: Sleep = asyncio.sleep,
                 report: Callable[[Decision], None] = lambda d: None,
                 starting_deadline: float = 60.0, max_sleep: float = 30.0,
                 run_now: bool = False) -> None:
        for gd in gamedays:
            if gd.schedule is None:
                raise ValueError(f"{gd.source} has no schedule")
        self.gamedays = list(gamedays)
        self.start, self.clock, self.sleep, self.report = start, clock, sleep, report
        self.starting_deadline, self.max_sleep = starting_deadline, max_sleep
        self.slots = {id(gd): Slots(gd.schedule) for gd in gamedays if gd.schedule}
        now = clock()
        self.next: dict[int, datetime] = {id(gd): now if run_now else self.slots[id(gd)].after(now)
                                          for gd in gamedays}
        self.running: dict[int, asyncio.Task[int]] = {}
        self._stopping = asyncio.Event()
        self.results: list[tuple[GameDay, datetime, int]] = []

    def due(self, now: datetime) -> list[Decision]:
        """What to do at `now`; advances each game day past the slots it decided on."""
        decisions = []
        for gd in self.gamedays:
            key = id(gd)
            started = False
            while self.next[key] <= now:
                slot = self.next[key]
                late = (now - slot).total_seconds()
                if late > self.starting_deadline:
                    decisions.append(Decision(gd, slot, "missed", f"{until(now, slot)} late "
                                              "(the scheduler was not running, or the machine "
                                              "slept)"))
                elif key in self.running or started:
                    decisions.append(Decision(gd, slot, "missed",
                                              "the previous run was still running"))
                else:
                    decisions.append(Decision(gd, slot, "start"))
                    started = True
                self.next[key] = self.slots[key].after(slot)
        return decisions

    def next_wake(self) -> datetime:
        return min(self.next.values())

    def finished(self, gd: GameDay) -> None:
        self.running.pop(id(gd), None)

    async def serve(self) -> None:
        """Run until `stop()`; then wait for the running game days to end."""
        while not self._stopping.is_set():
            now = self.clock()
            for decision in self.due(now):
                self.report(decision)
                if decision.action == "start":
                    self._launch(decision)
            wait = max(0.0, min((self.next_wake() - now).total_seconds(), self.max_sleep))
            sleeper = asyncio.ensure_future(self.sleep(wait))
            stopper = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({sleeper, stopper, *self.running.values()},
                               return_when=asyncio.FIRST_COMPLETED)
            for task in (sleeper, stopper):
                task.cancel()
        if self.running:
            await asyncio.wait(set(self.running.values()))

    def _launch(self, decision: Decision) -> None:
        gd = decision.gameday

        async def run() -> int:
            try:
                code = await self.start(gd)
                self.results.append((gd, decision.slot, code))
                return code
            finally:
                self.finished(gd)

        self.running[id(gd)] = asyncio.ensure_future(run())

    def stop(self) -> None:
        self._stopping.set()


class MissReporter:
    """`report=` for a Scheduler: prints each missed slot and sends `gameday.missed` to the game
    day's webhooks (payload in docs/gamedays.md); `drain` before exiting, or a miss reported
    just before a signal would never arrive."""

    def __init__(self, echo: Callable[[str], None],
                 warn: Callable[[str], None] | None = None) -> None:
        self.echo, self.warn = echo, warn
        self._notifiers: dict[str, Notifier] = {}

    def __call__(self, d: Decision) -> None:
        if d.action != "missed":
            return
        self.echo(f"missed: {d.gameday.title} at {describe_slot(d.slot, d.gameday.schedule)}: "
                  f"{d.why}")
        notifier = self._notifiers.setdefault(d.gameday.source,
                                              Notifier(d.gameday.notify, warn=self.warn))
        notifier.send("missed", {"title": d.gameday.title, "source": d.gameday.source,
                                 "slot": d.slot.isoformat(), "reason": d.why})

    async def drain(self) -> None:
        await asyncio.gather(*(n.drain() for n in self._notifiers.values()))


def describe_slot(slot: datetime, schedule: Schedule | None) -> str:
    """`2026-03-31 10:00 CEST (08:00 UTC)`."""
    if schedule is None:
        return slot.strftime("%Y-%m-%d %H:%M UTC")
    local = slot.astimezone(ZoneInfo(schedule.timezone))
    if local.utcoffset() == timedelta(0) and local.tzname() in ("UTC", "GMT", "Z"):
        return f"{local:%Y-%m-%d %H:%M} UTC"
    return f"{local:%Y-%m-%d %H:%M %Z} ({slot.astimezone(UTC):%H:%M} UTC)"


def until(slot: datetime, now: datetime) -> str:
    seconds = max(0, int((slot - now).total_seconds()))
    return str(timedelta(seconds=seconds))
