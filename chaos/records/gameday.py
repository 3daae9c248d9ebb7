"""`GameDayRecord`: a game day's aggregate journal (`chaos.gameday/v1`) as typed records.

`chaos gameday run` writes one (`to_json`) when the game day starts and again when it ends;
`chaos report` reads one (`GameDayRecord.from_json`) with the journals it points to. Like the
run journal's records (chaos.records.layout), `from_json(doc).to_json() == doc` key for key
and in order, keys this version does not know are kept, and a damaged document is refused with
a ValueError naming the file and the field. docs/gamedays.md is the format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos.records.layout import (NUMBER, Damaged, JsonObject, Record, items, keys_of, obj,
                                  shape, text, typed)
from chaos.records.run import Tool
from chaos.records.vocabulary import GAMEDAY_SCHEMA


@dataclass(frozen=True)
class Schedule(Record):
    cron: str | None = None
    timezone: str | None = None
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_json(cls, data: Any, where: str) -> Schedule:
        data = obj(data, where)
        return cls(typed(data, "cron", str, where), typed(data, "timezone", str, where),
                   **shape(cls, data))


@dataclass(frozen=True)
class GameDayExperiment(Record):
    """One experiment of the game day: where it sits, how it ended, and where its journal is.

    The last four fields come from its journal once it ran (`title` alone for one skipped, none
    while it is pending or running): `with_layout` writes only those it has."""

    index: int | None = None  # 1-based, in file order
    step: int | None = None  # 0-based; a parallel group is one step
    parallel: bool | None = None
    file: str | None = None  # as the game-day file names it
    path: str | None = None  # resolved
    vars: JsonObject = field(default_factory=dict)
    weight: int | None = None
    status: str | None = None  # pending | running | done | skipped
    exit_code: int | None = None
    skipped: str | None = None  # why it did not run
    started: float | None = None  # epoch seconds
    finished: float | None = None
    journal: str | None = None  # relative to the aggregate file
    output: str | None = None
    run: str | None = None
    verdict: str | None = None
    title: str | None = None
    reason: str | None = None
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_json(cls, data: Any, where: str) -> GameDayExperiment:
        data = obj(data, where)
        return cls(typed(data, "index", int, where), typed(data, "step", int, where),
                   typed(data, "parallel", bool, where), typed(data, "file", str, where),
                   typed(data, "path", str, where), obj(data.get("vars") or {}, f"{where}.vars"),
                   typed(data, "weight", int, where), typed(data, "status", str, where),
                   typed(data, "exit_code", int, where), typed(data, "skipped", str, where),
                   typed(data, "started", NUMBER, where), typed(data, "finished", NUMBER, where),
                   typed(data, "journal", str, where), typed(data, "output", str, where),
                   typed(data, "run", str, where), typed(data, "verdict", str, where),
                   typed(data, "title", str, where), typed(data, "reason", str, where),
                   **shape(cls, data))

    @staticmethod
    def with_layout(from_journal: Mapping[str, Any]) -> tuple[str, ...]:
        """The keys a writer's experiment has: every one of its own, and of the four taken
        from its journal those it has (`from_journal`'s keys)."""
        own = tuple(keys_of(GameDayExperiment))[:-len(FROM_JOURNAL)]
        return own + tuple(key for key in FROM_JOURNAL if key in from_journal)


FROM_JOURNAL = ("run", "verdict", "title", "reason")


@dataclass(frozen=True)
class GameDayRecord(Record):
    schema: str = GAMEDAY_SCHEMA
    gameday: str | None = None  # the game-day id, also its directory's name
    title: str | None = None
    source: str | None = None
    owners: tuple[str, ...] = ()
    host: str | None = None
    sha256: str | None = None  # of the game-day file's text
    description: str | None = None
    tool: Tool | None = None
    schedule: Schedule | None = None
    stop_on: str | None = None
    started: float | None = None  # epoch seconds
    finished: float | None = None  # null while it runs
    duration: float | None = None
    exit_code: int | None = None
    stopped: str | None = None  # why it stopped early
    score: float | None = None  # the resilience score, 0-100
    experiments: tuple[GameDayExperiment, ...] = ()
    reports: Mapping[str, str] = field(default_factory=dict)  # format -> file
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def of(cls, document: GameDayRecord | Mapping[str, Any],
           origin: str | None = None) -> GameDayRecord:
        """A record, or the record of an aggregate a caller holds as its JSON document."""
        return document if isinstance(document, GameDayRecord) else cls.from_json(document,
                                                                                  origin)

    @classmethod
    def from_json(cls, data: Any, origin: str | None = None) -> GameDayRecord:
        """The record of an aggregate document; a ValueError names `origin` (the file) and the
        field that is missing or of the wrong type."""
        name = origin or "the game-day journal"
        if not isinstance(data, Mapping) or data.get("schema") != GAMEDAY_SCHEMA:
            raise ValueError(f"{name} is not a chaos game-day journal ({GAMEDAY_SCHEMA})")
        try:
            return cls._read(data)
        except Damaged as exc:
            raise ValueError(f"{name} is a damaged chaos game-day journal: {exc.where} "
                             "missing or of the wrong type") from None

    @classmethod
    def _read(cls, data: Mapping[str, Any]) -> GameDayRecord:
        tool, schedule = data.get("tool"), data.get("schedule")
        if not isinstance(data.get("experiments"), list):
            raise Damaged("experiments")  # what a report is made of: never guessed empty
        reports = obj(data.get("reports") or {}, "reports")
        for key, value in reports.items():
            text(value, f"reports.{key}")
        return cls(
            typed(data, "schema", str, ""), typed(data, "gameday", str, ""),
            typed(data, "title", str, ""), typed(data, "source", str, ""),
            items(data.get("owners"), "owners", text), typed(data, "host", str, ""),
            typed(data, "sha256", str, ""), typed(data, "description", str, ""),
            None if tool is None else Tool.from_json(tool, "tool"),
            None if schedule is None else Schedule.from_json(schedule, "schedule"),
            typed(data, "stop_on", str, ""), typed(data, "started", NUMBER, ""),
            typed(data, "finished", NUMBER, ""), typed(data, "duration", NUMBER, ""),
            typed(data, "exit_code", int, ""), typed(data, "stopped", str, ""),
            typed(data, "score", NUMBER, ""),
            items(data["experiments"], "experiments", _experiment),
            reports, **shape(cls, data))


def _experiment(data: Any, where: str) -> GameDayExperiment:
    """An experiment as a report needs it: what it is and whether it ran, with its journal."""
    record = GameDayExperiment.from_json(data, where)
    for key in ("file", "status"):
        if getattr(record, key) is None:
            raise Damaged(f"{where}.{key}")
    return record
