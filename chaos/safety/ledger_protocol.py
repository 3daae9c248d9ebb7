"""What a ledger is to the engine and the reverters, whatever stores it.

`LedgerStore` is the interface the engine, planning, guards and `revert_many` are typed
against: the write-ahead steps in order (intent -> applied -> reverted | revert_failed, batched
per fault), the closing records that never raise, and the reads (entries, open entries, who
runs what). `Ledger` (chaos.safety.ledger) keeps it in fsynced files; `MemoryLedger`
(chaos.testing) keeps it in a list, for in-process tests.

`RecordLedger` writes the protocol's records on top of one storage primitive (`append`), so
both ledgers write exactly the same records and fold them with the same rules
(chaos.safety.ledger_format).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from chaos.clock import SYSTEM_CLOCK, Clock
from chaos.errors import StateDirUnusable
from chaos.model.redaction import NOTHING, Redactor
from chaos.safety.ledger_format import REDACTED, SCHEMA, Entry, RunInfo, Unrecorded

log = logging.getLogger(__name__)


class RevertLocking(Protocol):
    """A run's revert lock as one process holds it (see chaos.safety.ledger.RevertLock)."""

    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...


class LedgerStore(Protocol):
    state_dir: Path  # target locks and watchdog logs live beside the ledger
    unrecorded: list[Unrecorded]

    def start_run(self, run: str, *, pid: int, pid_create_time: float, title: str) -> None: ...

    def watchdog_started(self, run: str, *, pid: int, pid_create_time: float) -> None: ...

    def intents(self, run: str, targets: list[tuple[str, str, Mapping[str, Any]]], *,
                fault: str, deadline: float | None, ends: float | None = None) -> None: ...

    def applied_all(self, run: str,
                    refined: Mapping[str, Mapping[str, Any] | None]) -> None: ...

    def reverted_all(self, run: str, outcomes: Mapping[str, str], *, by: str) -> None: ...

    def revert_failed(self, run: str, ident: str, *, by: str, error: str) -> bool: ...

    def finish_run(self, run: str, *, exit_code: int) -> bool: ...

    def unrecorded_of(self, run: str) -> list[Unrecorded]: ...

    def written_by_others(self, run: str) -> bool: ...

    def revision(self, run: str) -> object:
        """A token that changes whenever the run's ledger does (cheap: no parsing)."""

    def revert_lock(self, run: str) -> RevertLocking: ...

    def entries(self, run: str) -> list[Entry]: ...

    def open_entries(self, run: str | None = None) -> list[Entry]: ...

    def heads(self, lines: int = 8) -> Iterator[RunInfo]: ...


class RecordLedger:
    """The protocol's records, written through `_store` (one durable record, or raise
    StateDirUnusable and store nothing)."""

    state_dir: Path

    def __init__(self, *, redactor: Redactor = NOTHING, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock  # what each record's `ts` says
        # closing records (reverted, revert_failed, finished) this process could not write
        self.unrecorded: list[Unrecorded] = []
        self.redactor = redactor  # secrets in labels, titles and errors; never in revert specs

    def _store(self, run: str, event: str, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def append(self, run: str, event: str, **fields: Any) -> None:
        """Write one record durably or raise StateDirUnusable (the ledger is left as it was)."""
        if self.redactor:
            fields = {k: self.redactor.data(v) if k in REDACTED else v for k, v in fields.items()}
            if "batch" in fields:
                fields["batch"] = [{**item, "target": self.redactor.text(item["target"])}
                                   for item in fields["batch"]]
        record = {"v": SCHEMA, "ts": self.clock.time(), "event": event, "run": run, **fields}
        self._store(run, event, record)

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

    def unrecorded_of(self, run: str) -> list[Unrecorded]:
        return [u for u in self.unrecorded if u.run == run]

    # the protocol, in order
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
