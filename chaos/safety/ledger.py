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
newline before the next append. An append is whole and fsynced or it raises `StateDirUnusable`
and leaves the file as it was (a full or read-only disk): nothing is injected without a durable
intent. Reverters of one run are serialised by a second flock (`revert_lock`), so two of them
never undo the same entry at once; a `reverted` record is final unless an `applied` follows it.
A record that is valid JSON but not a valid record is quarantined: reported with its file and
line, left out of the fold, and the rest of the ledger still counts.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.errors import StateDirUnusable
from chaos.model.redaction import NOTHING, Redactor
from chaos.paths import default_state_dir

log = logging.getLogger(__name__)

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


# --- writing: one whole, fsynced line, or nothing at all


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)  # short on a full disk: the rest then fails with ENOSPC
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def _write_locked(path: Path, line: bytes) -> int:
    """Append `line` and fsync it, or raise OSError with the file as it was before. Returns the
    file's size after the append."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as reader:
                reader.seek(size - 1)
                if reader.read(1) != b"\n":  # a torn line: fence it off
                    line = b"\n" + line
        try:
            _write_all(fd, line)
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):  # no half record for later readers
                os.ftruncate(fd, size)
                os.fsync(fd)
            raise
        return size + len(line)
    finally:
        os.close(fd)


def unusable(directory: Path, exc: OSError, doing: str) -> StateDirUnusable:
    """The error for a state dir we cannot write, saying which and why (exit 2)."""
    name = errno.errorcode.get(exc.errno or 0, "")
    reason = exc.strerror or str(exc)
    return StateDirUnusable(f"cannot {doing} in the state directory {directory}: {reason}"
                            + (f" ({name})" if name else ""),
                            directory=str(directory), errno_name=name)


class RevertLock:
    """A run's revert lock as one process holds it: an flock shared by the tasks of that process
    (they revert different injections; it is other processes that must take turns)."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self.holders = 0

    def try_acquire(self) -> bool:
        if self.holders == 0 and self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        self.holders += 1  # no fd: nothing to lock, go on unserialised rather than not revert
        return True

    def release(self) -> None:
        self.holders -= 1
        if self.holders == 0 and self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)


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


class Ledger:
    """All runs' ledgers in one state directory."""

    def __init__(self, state_dir: Path | None = None, *, redactor: Redactor = NOTHING) -> None:
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self.directory = self.state_dir / "ledger"
        # closing records (reverted, revert_failed, finished) this process could not write
        self.unrecorded: list[Unrecorded] = []
        self._own_size: dict[str, int] = {}  # per run: its file's size after our last append
        self._revert_locks: dict[str, RevertLock] = {}
        self.redactor = redactor  # secrets in labels, titles and errors; never in revert specs

    def path(self, run: str) -> Path:
        return self.directory / f"{run}.jsonl"

    def append(self, run: str, event: str, **fields: Any) -> None:
        """Write one record durably or raise StateDirUnusable (the file is left as it was)."""
        if self.redactor:
            fields = {k: self.redactor.data(v) if k in REDACTED else v for k, v in fields.items()}
            if "batch" in fields:
                fields["batch"] = [{**item, "target": self.redactor.text(item["target"])}
                                   for item in fields["batch"]]
        record = {"v": SCHEMA, "ts": time.time(), "event": event, "run": run, **fields}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._own_size[run] = _write_locked(
                self.path(run), (json.dumps(record, sort_keys=True) + "\n").encode())
        except OSError as exc:
            raise unusable(self.directory, exc, f"write the {event} record") from exc

    def close_record(self, run: str, event: str, **fields: Any) -> bool:
        """Append a record that reports what already happened (a revert, the run's end).

        Never raises: what it reports is done whether or not it can be written. A failure is
        logged and kept in `unrecorded`, so the caller can say so (exit 5) and `chaos recover`
        can close the entry once the directory is writable again."""
        try:
            self.append(run, event, **fields)
        except StateDirUnusable as exc:
            ident = str(fields.get("id") or ",".join(map(str, fields.get("ids") or [])))
            self.unrecorded.append(Unrecorded(run, event, ident, str(exc)))
            log.error("%s; the %s record of %s is missing from the ledger", exc, event,
                      ident or run)
            return False
        return True

    def written_by_others(self, run: str) -> bool:
        """Whether anyone else appended to the run's ledger since this instance last did: if
        not, what this process wrote is still the whole story and need not be read back."""
        try:
            return self._own_size.get(run) != self.path(run).stat().st_size
        except OSError:
            return True

    def unrecorded_of(self, run: str) -> list[Unrecorded]:
        return [u for u in self.unrecorded if u.run == run]

    def revert_lock(self, run: str) -> RevertLock:
        """The run's revert lock: one reverter process of a run at a time.

        Never fails for lack of a writable disk: the lock file is made at the run's start and
        later only opened for reading; without it, the ledger directory itself is locked."""
        lock = self._revert_locks.get(run)
        if lock is None:
            lock = self._revert_locks[run] = RevertLock(self._open_revert_lock(run))
        return lock

    def _open_revert_lock(self, run: str) -> int | None:
        for path, flags in ((self.directory / f"{run}.lock", os.O_RDONLY),
                            (self.directory / f"{run}.lock", os.O_RDONLY | os.O_CREAT),
                            (self.directory, os.O_RDONLY)):
            try:
                return os.open(path, flags | os.O_CLOEXEC, 0o600)
            except OSError:
                continue
        log.error("cannot lock %s for reverting; reverting without serialising", self.directory)
        return None

    # the protocol, in order
    def start_run(self, run: str, *, pid: int, pid_create_time: float, title: str) -> None:
        with contextlib.suppress(OSError):  # housekeeping; the append below says what is wrong
            self.prune()
        self.append(run, "run", pid=pid, pid_create_time=pid_create_time, title=title)
        try:
            os.close(os.open(self.directory / f"{run}.lock", os.O_RDONLY | os.O_CREAT, 0o600))
        except OSError as exc:
            raise unusable(self.directory, exc, "create the run's revert lock") from exc

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
        self.close_record(run, "reverted", ids=list(outcomes), outcomes=dict(outcomes), by=by)

    def applied(self, run: str, ident: str, revert: Mapping[str, Any] | None = None) -> None:
        extra = {"revert": dict(revert)} if revert is not None else {}
        self.append(run, "applied", id=ident, **extra)

    def reverted(self, run: str, ident: str, *, by: str, outcome: str = "reverted") -> bool:
        return self.close_record(run, "reverted", id=ident, by=by, outcome=outcome)

    def revert_failed(self, run: str, ident: str, *, by: str, error: str) -> bool:
        return self.close_record(run, "revert_failed", id=ident, by=by, error=error)

    def finish_run(self, run: str, *, exit_code: int) -> bool:
        return self.close_record(run, "finished", exit_code=exit_code)

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
            if info.finished and not info.quarantined and not any(
                    e.is_open for e in info.entries):
                path.unlink(missing_ok=True)
                path.with_suffix(".lock").unlink(missing_ok=True)

    # reading
    def run_ids(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        files = sorted(self.directory.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
        return [p.stem for p in files]

    def run_info(self, run: str) -> RunInfo:
        records, quarantined = read_ledger(self.path(run))
        head = next((r for r in records if r["event"] == "run"), {})
        guard = next((r for r in records if r["event"] == "watchdog"), {})
        return RunInfo(
            run=run, pid=head.get("pid", 0), pid_create_time=head.get("pid_create_time", 0.0),
            title=head.get("title", ""), started=head.get("ts", 0.0),
            finished=any(r["event"] == "finished" for r in records),
            entries=tuple(fold(records)), quarantined=tuple(quarantined),
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
