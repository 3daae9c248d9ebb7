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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chaos.errors import StateDirUnusable
from chaos.model.redaction import NOTHING, Redactor
from chaos.paths import default_state_dir
from chaos.safety.ledger_format import (OPEN_STATES, SCHEMA, Entry, Quarantined, RunInfo,
                                        Unrecorded, expand, fold, read_ledger, read_records)
from chaos.safety.ledger_protocol import LedgerStore, RecordLedger

__all__ = ["OPEN_STATES", "SCHEMA", "Entry", "Ledger", "LedgerStore", "Quarantined",
           "RevertLock", "RunInfo", "Unrecorded", "expand", "fold", "read_ledger", "read_records",
           "unusable"]

log = logging.getLogger(__name__)
KEEP_CLOSED = 14 * 86400.0  # seconds a closed run's ledger is kept for `chaos status` history


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


class Ledger(RecordLedger):
    """All runs' ledgers in one state directory (a `LedgerStore`)."""

    def __init__(self, state_dir: Path | None = None, *, redactor: Redactor = NOTHING) -> None:
        super().__init__(redactor=redactor)
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self.directory = self.state_dir / "ledger"
        self._own_size: dict[str, int] = {}  # per run: its file's size after our last append
        self._revert_locks: dict[str, RevertLock] = {}

    def path(self, run: str) -> Path:
        return self.directory / f"{run}.jsonl"

    def _store(self, run: str, event: str, record: dict[str, Any]) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._own_size[run] = _write_locked(
                self.path(run), (json.dumps(record, sort_keys=True) + "\n").encode())
        except OSError as exc:
            raise unusable(self.directory, exc, f"write the {event} record") from exc

    def revision(self, run: str) -> object:
        stat = os.stat(self.path(run))
        return stat.st_size, stat.st_mtime_ns

    def written_by_others(self, run: str) -> bool:
        """Whether anyone else appended to the run's ledger since this instance last did: if
        not, what this process wrote is still the whole story and need not be read back."""
        try:
            return self._own_size.get(run) != self.path(run).stat().st_size
        except OSError:
            return True

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
