"""The write-ahead ledger of injections: what was (maybe) injected, and how to undo it.

One JSON-lines file per run under `<state dir>/ledger/`. Before a fault is injected its `intent`
record, holding the revert spec as plain data, is appended and fsynced; then `applied`; then
`reverted` or `revert_failed`. An injection is *open* until a `reverted` record follows it, so a
runner killed between intent and inject still gets reverted (reverts are idempotent).

A fault with many targets writes one record per step for all of them (`batch`, `ids`): one
fsynced intent before any target is touched, one `applied` after, one `reverted` after all are
undone. `expand` turns such a record back into one per target before anything folds them, so
each target is still its own entry, reverted on its own (pid + create time) from plain data.

Appends hold an exclusive flock, so the runner, its watchdog and `chaos stop` can write the same
file. A torn last line (writer killed mid-write) is skipped when read and fenced off with a
newline before the next append.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.model.redaction import NOTHING, Redactor
from chaos.paths import default_state_dir

SCHEMA = 1
OPEN_STATES = frozenset({"intent", "applied", "revert_failed"})
KEEP_CLOSED = 14 * 86400.0  # seconds a closed run's ledger is kept for `chaos status` history
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
class RunInfo:
    run: str
    pid: int
    pid_create_time: float
    title: str
    started: float
    finished: bool
    entries: tuple[Entry, ...] = field(default=())
    watchdog_pid: int = 0  # recorded by the watchdog itself when it starts
    watchdog_create_time: float = 0.0


def _write_locked(path: Path, line: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as reader:
                reader.seek(size - 1)
                if reader.read(1) != b"\n":  # a torn line: fence it off
                    line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: Path) -> list[dict[str, Any]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records = []
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            continue  # torn write
        if isinstance(record, dict) and "event" in record:
            records.append(record)
    return records


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
    """Per-injection state from the record history, in creation order."""
    entries: dict[str, Entry] = {}
    for r in expand(records):
        event, ident = r["event"], r.get("id")
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


class Ledger:
    """All runs' ledgers in one state directory."""

    def __init__(self, state_dir: Path | None = None, *, redactor: Redactor = NOTHING) -> None:
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self.directory = self.state_dir / "ledger"
        self.redactor = redactor  # secrets in labels, titles and errors; never in revert specs

    def path(self, run: str) -> Path:
        return self.directory / f"{run}.jsonl"

    def append(self, run: str, event: str, **fields: Any) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.redactor:
            fields = {k: self.redactor.data(v) if k in REDACTED else v for k, v in fields.items()}
            if "batch" in fields:
                fields["batch"] = [{**item, "target": self.redactor.text(item["target"])}
                                   for item in fields["batch"]]
        record = {"v": SCHEMA, "ts": time.time(), "event": event, "run": run, **fields}
        _write_locked(self.path(run), (json.dumps(record, sort_keys=True) + "\n").encode())

    # the protocol, in order
    def start_run(self, run: str, *, pid: int, pid_create_time: float, title: str) -> None:
        self.prune()
        self.append(run, "run", pid=pid, pid_create_time=pid_create_time, title=title)

    def watchdog_started(self, run: str, *, pid: int, pid_create_time: float) -> None:
        """Who guards this run: other runs' guards refuse to hit it (see safety/guards.py)."""
        self.append(run, "watchdog", pid=pid, pid_create_time=pid_create_time)

    def intent(self, run: str, ident: str, *, fault: str, target: str,
               revert: Mapping[str, Any], deadline: float | None,
               ends: float | None = None) -> None:
        self.append(run, "intent", id=ident, fault=fault, target=target, revert=dict(revert),
                    deadline=deadline, ends=ends)

    def intents(self, run: str, targets: list[tuple[str, str, Mapping[str, Any]]], *,
                fault: str, deadline: float | None, ends: float | None = None) -> None:
        """One durable intent for a fault's whole target set: (id, target label, revert spec)
        each. A single target is written as a plain `intent`."""
        if len(targets) == 1:
            ident, target, revert = targets[0]
            self.intent(run, ident, fault=fault, target=target, revert=revert,
                        deadline=deadline, ends=ends)
            return
        self.append(run, "intent", fault=fault, deadline=deadline, ends=ends,
                    batch=[{"id": i, "target": t, "revert": dict(r)} for i, t, r in targets])

    def applied_all(self, run: str, refined: Mapping[str, Mapping[str, Any] | None]) -> None:
        """`applied` for many ids at once; a spec where the adapter refined it, else None."""
        if len(refined) == 1:
            ((ident, revert),) = refined.items()
            self.applied(run, ident, revert)
            return
        specs = {i: dict(r) for i, r in refined.items() if r is not None}
        self.append(run, "applied", ids=list(refined), **({"revert": specs} if specs else {}))

    def reverted_all(self, run: str, outcomes: Mapping[str, str], *, by: str) -> None:
        """`reverted` for many ids at once, each with its outcome."""
        if len(outcomes) == 1:
            ((ident, outcome),) = outcomes.items()
            self.reverted(run, ident, by=by, outcome=outcome)
            return
        self.append(run, "reverted", ids=list(outcomes), outcomes=dict(outcomes), by=by)

    def applied(self, run: str, ident: str, revert: Mapping[str, Any] | None = None) -> None:
        extra = {"revert": dict(revert)} if revert is not None else {}
        self.append(run, "applied", id=ident, **extra)

    def reverted(self, run: str, ident: str, *, by: str, outcome: str = "reverted") -> None:
        self.append(run, "reverted", id=ident, by=by, outcome=outcome)

    def revert_failed(self, run: str, ident: str, *, by: str, error: str) -> None:
        self.append(run, "revert_failed", id=ident, by=by, error=error)

    def finish_run(self, run: str, *, exit_code: int) -> None:
        self.append(run, "finished", exit_code=exit_code)

    def prune(self, older_than: float = KEEP_CLOSED) -> None:
        """Forget finished runs with nothing open, after a while; open ones stay forever."""
        if not self.directory.is_dir():
            return
        cutoff = time.time() - older_than
        for path in self.directory.glob("*.jsonl"):
            try:
                if path.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            info = self.run_info(path.stem)
            if info.finished and not any(e.is_open for e in info.entries):
                path.unlink(missing_ok=True)

    # reading
    def run_ids(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        files = sorted(self.directory.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
        return [p.stem for p in files]

    def run_info(self, run: str) -> RunInfo:
        records = read_records(self.path(run))
        head = next((r for r in records if r["event"] == "run"), {})
        guard = next((r for r in records if r["event"] == "watchdog"), {})
        return RunInfo(
            run=run, pid=head.get("pid", 0), pid_create_time=head.get("pid_create_time", 0.0),
            title=head.get("title", ""), started=head.get("ts", 0.0),
            finished=any(r["event"] == "finished" for r in records),
            entries=tuple(fold(records)),
            watchdog_pid=guard.get("pid", 0),
            watchdog_create_time=guard.get("pid_create_time", 0.0),
        )

    def heads(self, lines: int = 8) -> Iterator[RunInfo]:
        """Who runs each ledger (runner and watchdog identities), from its first few records
        only: cheap enough to ask at every fault start, however long the ledgers are."""
        for run in self.run_ids():
            head: dict[str, Any] = {}
            guard: dict[str, Any] = {}
            try:
                with open(self.path(run), "rb") as handle:
                    for raw in itertools.islice(handle, lines):
                        try:
                            record = json.loads(raw)
                        except ValueError:
                            continue
                        if isinstance(record, dict) and record.get("event") == "run":
                            head = record
                        elif isinstance(record, dict) and record.get("event") == "watchdog":
                            guard = record
                        if head and guard:
                            break
            except FileNotFoundError:
                continue
            yield RunInfo(run=run, pid=head.get("pid", 0),
                          pid_create_time=head.get("pid_create_time", 0.0),
                          title=head.get("title", ""), started=head.get("ts", 0.0),
                          finished=False, watchdog_pid=guard.get("pid", 0),
                          watchdog_create_time=guard.get("pid_create_time", 0.0))

    def runs(self) -> Iterator[RunInfo]:
        for run in self.run_ids():
            yield self.run_info(run)

    def entries(self, run: str) -> list[Entry]:
        return fold(read_records(self.path(run)))

    def open_entries(self, run: str | None = None) -> list[Entry]:
        runs = [run] if run else self.run_ids()
        return [e for r in runs for e in self.entries(r) if e.is_open]
