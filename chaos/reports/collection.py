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

from chaos.runner import journal as journals

GAMEDAY_SCHEMA = "chaos.gameday/v1"


@dataclass(frozen=True)
class Entry:
    """One experiment of the collection; `journal` is None when it did not run."""

    label: str  # the experiment file as the game day names it, or the journal path
    journal: Mapping[str, Any] | None
    path: Path | None = None
    weight: int = 1
    skipped: str = ""  # why it did not run
    title: str = ""  # the experiment's title, when known without a journal


@dataclass(frozen=True)
class Collection:
    title: str
    entries: tuple[Entry, ...]
    gameday: Mapping[str, Any] | None = None  # the aggregate journal, when there is one
    owners: tuple[str, ...] = field(default=())

    @property
    def journals(self) -> list[Mapping[str, Any]]:
        return [e.journal for e in self.entries if e.journal is not None]


def load(paths: Iterable[Path]) -> Collection:
    """Read journals and aggregates; raises ValueError naming a file that is neither."""
    entries: list[Entry] = []
    gamedays: list[Mapping[str, Any]] = []
    for path in paths:
        data = journals.load(path)
        if isinstance(data, dict) and data.get("schema") == GAMEDAY_SCHEMA:
            gamedays.append(data)
            entries += from_gameday(data, path.parent)
        else:
            entries.append(Entry(str(path), journals.checked(path, data), path))
    if len(gamedays) == 1:
        one = gamedays[0]
        return Collection(str(one.get("title", "game day")), tuple(entries), one,
                          tuple(one.get("owners") or ()))
    title = entries[0].journal["experiment"]["title"] if len(entries) == 1 and entries[
        0].journal else "Chaos experiments"
    return Collection(title, tuple(entries))


def from_gameday(document: Mapping[str, Any], base: Path) -> list[Entry]:
    """The aggregate's experiments; journal paths in it are relative to the aggregate file."""
    entries = []
    for item in document.get("experiments", []):
        label, weight = str(item.get("file")), int(item.get("weight", 1))
        if item.get("status") != "done" or not item.get("journal"):
            entries.append(Entry(label, None, None, weight,
                                 item.get("skipped") or "not run", str(item.get("title") or "")))
            continue
        path = base / item["journal"]
        entries.append(Entry(label, journals.read(path), path, weight))
    return entries
