"""The ledger's record format: what each record says, how records are trusted, and how they
fold into per-injection entries.

Storage (a JSON-lines file per run, chaos.safety.ledger; a list in memory, chaos.testing) is
separate from meaning, so every ledger folds the same records the same way and the watchdog,
`chaos recover` and the engine agree on what is open.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = 1
OPEN_STATES = frozenset({"intent", "applied", "revert_failed"})
REDACTED = frozenset({"target", "title", "error"})  # what may carry a secret from the experiment


@dataclass(frozen=True)
class Entry:
    """The folded state of one injection."""

    id: str
    run: str
    state: str  # intent | applied | reverted | revert_failed
    fault: str
    target: str  # human label
    adapter: str
    revert: Mapping[str, Any]
    deadline: float | None  # epoch seconds after which the watchdog reverts it
    created: float
    updated: float
    error: str = ""
    reverted_by: str = ""
    ends: float | None = None  # when the runner means to revert it (the deadline adds grace)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


@dataclass(frozen=True)
class Quarantined:
    """A ledger line that parses as JSON but is not a record we can trust: left out, reported."""

    path: Path
    line: int  # 1-based
    reason: str
    record: Mapping[str, Any]

    @property
    def may_hide_injection(self) -> bool:
        """An unreadable intent (or a record whose event we cannot tell) may be an injection
        nobody can revert from the ledger; a broken closing record only leaves its entry open."""
        return self.record.get("event") not in ("applied", "reverted", "revert_failed",
                                                 "finished", "run")

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class Unrecorded:
    """A record this process could not write; the physical revert it reports did happen."""

    run: str
    event: str
    id: str
    error: str


@dataclass(frozen=True)
class RunInfo:
    run: str
    pid: int
    pid_create_time: float
    title: str
    started: float
    finished: bool
    entries: tuple[Entry, ...] = field(default=())
    quarantined: tuple[Quarantined, ...] = field(default=())
    watchdog_pid: int = 0  # recorded by the watchdog itself when it starts
    watchdog_create_time: float = 0.0


# --- reading: skip torn lines, quarantine records that are not what they claim

_NUMBER = (int, float)
_OPTIONAL_NUMBER = (int, float, type(None))


def _problem(record: dict[str, Any]) -> str:
    """Why this record cannot be trusted, or "" if it can."""
    event = record.get("event")
    if not isinstance(event, str):
        return "no `event` name"
    if not isinstance(record.get("ts"), _NUMBER):
        return f"{event} record without a numeric `ts`"
    if event in ("intent", "applied", "reverted", "revert_failed"):
        if not isinstance(record.get("id"), str) or not record["id"]:
            return f"{event} record without an `id`"
    if event == "intent" or (event == "applied" and "revert" in record):
        revert = record.get("revert")
        if not isinstance(revert, dict) or not isinstance(revert.get("adapter"), str):
            return f"{event} record whose `revert` is not an object naming its adapter"
    if event == "intent":
        for key in ("deadline", "ends"):
            if not isinstance(record.get(key), _OPTIONAL_NUMBER):
                return f"intent record whose `{key}` is not a number"
    if event == "run" and not (isinstance(record.get("pid", 0), int) and isinstance(
            record.get("pid_create_time", 0.0), _NUMBER)):
        return "run record whose `pid` or `pid_create_time` is not a number"
    return ""


def read_ledger(path: Path) -> tuple[list[dict[str, Any]], list[Quarantined]]:
    """(trusted records, quarantined ones) of one ledger file; torn lines are skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], []
    records, quarantined = [], []
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            continue  # torn write
        if not isinstance(record, dict):
            quarantined.append(Quarantined(path, number, "not a JSON object", {}))
            continue
        # a batch record (many targets) is judged per target, as `fold` will see it
        for one in expand([record]) if isinstance(record.get("event"), str) else [record]:
            problem = _problem(one)
            if problem:
                quarantined.append(Quarantined(path, number, problem, one))
            else:
                records.append(one)
    return records, quarantined


def read_records(path: Path) -> list[dict[str, Any]]:
    return read_ledger(path)[0]


def expand(records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The records with each batch record (one for many targets) as one record per target.

    intent   {"batch": [{"id", "target", "revert"}, ...], "fault", "deadline", "ends"}
    applied  {"ids": [...], "revert": {id: refined spec, ...}}     (refined ones only)
    reverted {"ids": [...], "outcomes": {id: outcome, ...}, "by"}
    """
    for r in records:
        batch, ids = r.get("batch"), r.get("ids")
        if r["event"] == "intent" and isinstance(batch, list):
            common = {k: v for k, v in r.items() if k != "batch"}
            for item in batch:
                if isinstance(item, dict):
                    yield {**common, **item}
        elif r["event"] in ("applied", "reverted") and isinstance(ids, list):
            common = {k: v for k, v in r.items() if k not in ("ids", "revert", "outcomes")}
            refined, outcomes = r.get("revert") or {}, r.get("outcomes") or {}
            for ident in ids:
                one = {**common, "id": ident}
                if isinstance(refined, dict) and ident in refined:
                    one["revert"] = refined[ident]
                if isinstance(outcomes, dict) and ident in outcomes:
                    one["outcome"] = outcomes[ident]
                yield one
        else:
            yield r


def fold(records: list[dict[str, Any]]) -> list[Entry]:
    """Per-injection state from the record history, in creation order.

    `reverted` is final: a `revert_failed` after it is a second reverter that came too late
    (what it tried to undo was gone) and does not reopen the entry; only an `applied` does,
    because that proves the injection happened after the revert."""
    entries: dict[str, Entry] = {}
    for r in expand(records):
        event, ident = r["event"], r.get("id")
        if event == "revert_failed" and ident in entries and entries[ident].state == "reverted":
            continue
        if event == "intent" and ident:
            entries[ident] = Entry(
                id=ident, run=r.get("run", ""), state="intent", fault=r.get("fault", ""),
                target=r.get("target", ""), adapter=r.get("revert", {}).get("adapter", ""),
                revert=r.get("revert", {}), deadline=r.get("deadline"), created=r["ts"],
                updated=r["ts"], ends=r.get("ends"),
            )
        elif ident in entries and event in ("applied", "reverted", "revert_failed"):
            old = entries[ident]
            entries[ident] = Entry(
                **{**old.__dict__, "state": event, "updated": r["ts"],
                   "revert": r.get("revert", old.revert), "error": r.get("error", ""),
                   "reverted_by": r.get("by", old.reverted_by)}
            )
    return list(entries.values())
