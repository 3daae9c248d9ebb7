"""What a report is rendered from: experiment journals, or a game day's aggregate journal.

`chaos report` accepts both; an aggregate (`chaos.gameday/v1`, written by `chaos gameday run`,
schema in docs/gamedays.md) brings its experiments' journals, their weights in the resilience
score, and the experiments that were skipped because the game day stopped early.
"""

from __future__ import annotations

import json
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
        data = _json(path)
        if isinstance(data, dict) and data.get("schema") == GAMEDAY_SCHEMA:
            gamedays.append(data)
            entries += from_gameday(data, path.parent)
        else:
            entries.append(Entry(str(path), _journal(path, data), path))
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
        entries.append(Entry(label, read_journal(path), path, weight))
    return entries


def read_journal(path: Path) -> dict[str, Any]:
    """One experiment journal, checked as reports need it; ValueError says what is wrong."""
    return _journal(path, _json(path))


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read a journal: "
                         f"{exc.strerror if isinstance(exc, OSError) else exc}") from None


# what the reports read without a default; anything else may be missing
Kind = type | tuple[type, ...]
_REQUIRED: dict[str, Kind] = {"experiment": dict, "verdict": str, "exit_code": int}
_OPTIONAL: dict[str, Kind] = {"phases": dict, "injections": list, "series": list,
                              "events": list, "started": (int, float), "duration": (int, float)}


def _journal(path: Path, data: Any) -> dict[str, Any]:
    """A chaos journal, or a ValueError saying what is wrong with the file (a Chaos Toolkit
    journal, a truncated or hand-edited one) instead of a crash in a renderer."""
    if isinstance(data, dict) and "chaoslib-version" in data:
        raise ValueError(f"{path} is a Chaos Toolkit journal; chaos reports read chaos "
                         f"journals ({journals.SCHEMA}): `chaos run` also wrote one, as "
                         "RUNS_DIR/RUN_ID/journal.json")
    if not isinstance(data, dict) or data.get("schema") != journals.SCHEMA:
        raise ValueError(f"{path} is not a chaos journal ({journals.SCHEMA})")
    wrong = [key for key, kind in _REQUIRED.items() if not isinstance(data.get(key), kind)]
    wrong += [key for key, kind in _OPTIONAL.items()
              if data.get(key) is not None and not isinstance(data[key], kind)]
    if not wrong:
        wrong = [f"experiment.{key}" for key in ("title", "source")
                 if not isinstance(data["experiment"].get(key), str)]
    if wrong:
        raise ValueError(f"{path} is a damaged chaos journal: {', '.join(wrong)} missing or of "
                         "the wrong type")
    return data
