"""What a report is rendered from: experiment journals, or a game day's aggregate journal.

`chaos report` accepts both; an aggregate (`chaos.gameday/v1`, written by `chaos gameday run`,
schema in docs/gamedays.md) brings its experiments' journals, their weights in the resilience
score, and the experiments that were skipped because the game day stopped early.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.records import GAMEDAY_SCHEMA, GameDayRecord, RunRecord
from chaos.records import files as journals


@dataclass(frozen=True)
class Entry:
    """One experiment of the collection; `journal` is None when it did not run (a journal
    given as JSON, by a script or a test, is read into its record)."""

    label: str  # the experiment file as the game day names it, or the journal path
    journal: RunRecord | None
    path: Path | None = None
    weight: int = 1
    skipped: str = ""  # why it did not run
    title: str = ""  # the experiment's title, when known without a journal

    def __post_init__(self) -> None:
        if self.journal is not None and not isinstance(self.journal, RunRecord):
            object.__setattr__(self, "journal", RunRecord.from_json(self.journal))


@dataclass(frozen=True)
class Collection:
    title: str
    entries: tuple[Entry, ...]
    gameday: Mapping[str, Any] | None = None  # the aggregate journal, when there is one
    owners: tuple[str, ...] = field(default=())

    @property
    def records(self) -> list[RunRecord]:
        return [e.journal for e in self.entries if e.journal is not None]

    @property
    def journals(self) -> list[dict[str, Any]]:
        """The journals as JSON documents (`chaos report --format json`)."""
        return [r.to_json() for r in self.records]


def load(paths: Iterable[Path]) -> Collection:
    """Read journals and aggregates; raises ValueError naming a file that is neither."""
    entries: list[Entry] = []
    gamedays: list[Mapping[str, Any]] = []
    for path in paths:
        data = journals.load(path)
        if isinstance(data, dict) and data.get("schema") == GAMEDAY_SCHEMA:
            gamedays.append(data)
            entries += from_gameday(data, path.parent, str(path))
        else:
            entries.append(Entry(str(path), RunRecord.from_json(data, str(path)), path))
    if len(gamedays) == 1:
        one = gamedays[0]
        return Collection(str(one.get("title", "game day")), tuple(entries), one,
                          tuple(one.get("owners") or ()))
    only = entries[0].journal if len(entries) == 1 else None
    return Collection(str(only.experiment.title) if only else "Chaos experiments",
                      tuple(entries))


def from_gameday(document: GameDayRecord | Mapping[str, Any], base: Path,
                 origin: str | None = None) -> list[Entry]:
    """The aggregate's experiments; journal paths in it are relative to the aggregate file
    (`origin`, named when the aggregate or one of its journals is damaged)."""
    entries = []
    for item in GameDayRecord.of(document, origin).experiments:
        label, weight = str(item.file), 1 if item.weight is None else item.weight
        if item.status != "done" or not item.journal:
            entries.append(Entry(label, None, None, weight, item.skipped or "not run",
                                 item.title or ""))
            continue
        path = base / item.journal
        entries.append(Entry(label, journals.read(path), path, weight))
    return entries
