"""Revert injections from their revert specs: used by the runner, the watchdog, `chaos stop`
and `chaos recover` alike, so there is exactly one way to undo an injection.

Ledger appends here are synchronous on purpose: each is one small write + fsync, and the
write-ahead protocol needs them ordered with the reverts and untorn by task cancellation.

Reverting comes first and never depends on the ledger: a record that cannot be written (a full
or read-only state disk) is logged and kept in `ledger.unrecorded`, and the next entry is
reverted all the same. Reverters of one run hold its revert lock and re-read the ledger inside
it, so an entry another reverter closed meanwhile is not undone twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import psutil

from chaos.adapters.registry import AdapterRegistry
from chaos.errors import ChaosError, truncate
from chaos.safety import failpoints
from chaos.safety.ledger import Entry, RunInfo
from chaos.safety.ledger_protocol import LedgerStore

log = logging.getLogger(__name__)

LOCK_POLL = 0.01  # seconds between tries for a run's revert lock another reverter holds
LOCK_PATIENCE = 10.0  # seconds a reverter waits for that lock before it reverts anyway


@dataclass(frozen=True)
class RevertResult:
    entry: Entry
    outcome: str  # reverted | gone | nothing | failed
    error: str = ""


@contextlib.asynccontextmanager
async def reverting(ledger: LedgerStore, run: str, patience: float = LOCK_PATIENCE
                    ) -> AsyncIterator[None]:
    """Hold the run's revert lock, polling so the event loop (heartbeats, signals) runs on.

    After `patience` seconds it reverts anyway: a reverter stuck while holding the lock (a
    frozen runner, a hung API call) must not stop the watchdog; what that costs is at most a
    second revert of the same entry, which is idempotent and cannot reopen it."""
    lock = ledger.revert_lock(run)
    give_up = time.monotonic() + patience
    acquired = lock.try_acquire()
    while not acquired and time.monotonic() < give_up:
        await asyncio.sleep(LOCK_POLL)
        acquired = lock.try_acquire()
    if not acquired:
        log.warning("another reverter of run %s has held its revert lock for %gs; reverting "
                    "anyway", run, patience)
    try:
        yield
    finally:
        if acquired:
            lock.release()


def _current(ledger: LedgerStore, run: str) -> dict[str, Entry] | None:
    """The run's entries as the ledger has them now, or None if it cannot be read."""
    try:
        return {e.id: e for e in ledger.entries(run)}
    except OSError as exc:
        log.error("cannot read the ledger of %s (%s); reverting what was asked", run, exc)
        return None


async def revert_spec(run: str, ident: str, spec: Mapping[str, Any], ledger: LedgerStore,
                      adapters: AdapterRegistry, *, by: str) -> tuple[str, str]:
    """(outcome, error): outcome is reverted | gone | nothing | failed. An entry another
    reverter closed meanwhile is left alone (`nothing`)."""
    return (await revert_many(run, [(ident, spec)], ledger, adapters, by=by))[0]


async def revert_many(run: str, items: list[tuple[str, Mapping[str, Any]]], ledger: LedgerStore,
                      adapters: AdapterRegistry, *, by: str) -> list[tuple[str, str]]:
    """Revert (id, spec) pairs of one run in this order, under the run's revert lock; (outcome,
    error) for each.

    Every target is reverted on its own from its spec; the successes are recorded in one
    `reverted` record at the end (a failure at once), so a thousand targets cost one fsync.
    Dying before that record only means the next reverter does them again (idempotent). No
    ledger error stops a revert: records that cannot be written are kept in `ledger.unrecorded`.
    """
    async with reverting(ledger, run):
        now = _current(ledger, run) if ledger.written_by_others(run) else None
        return await _revert_and_record(run, items, now, ledger, adapters, by=by)


async def _revert_and_record(run: str, items: list[tuple[str, Mapping[str, Any]]],
                             now: dict[str, Entry] | None, ledger: LedgerStore,
                             adapters: AdapterRegistry, *, by: str) -> list[tuple[str, str]]:
    results: list[tuple[str, str]] = []
    done: dict[str, str] = {}
    for ident, spec in items:
        if now is not None and ident in now and not now[ident].is_open:
            results.append(("nothing", ""))  # another reverter closed it meanwhile
            continue
        try:
            outcome = await adapters.revert(spec)
            failpoints.hit("after_revert")
        except Exception as exc:  # an adapter's bug must not stop the other reverts either
            text = str(exc) if isinstance(exc, ChaosError) else f"{type(exc).__name__}: {exc}"
            error = truncate(text)
            log.error("revert of %s failed: %s", ident, error)
            ledger.revert_failed(run, ident, by=by, error=error)  # never raises
            results.append(("failed", error))
            continue
        done[ident] = outcome
        results.append((outcome, ""))
    if done:
        ledger.reverted_all(run, done, by=by)  # never raises: see ledger.unrecorded
    return results


async def revert_all(entries: list[Entry], ledger: LedgerStore, adapters: AdapterRegistry, *,
                     by: str) -> list[RevertResult]:
    """Newest first, like a stack: later faults may build on earlier ones. Each run's entries
    are reverted under its revert lock, from the ledger as it is once the lock is held."""
    ordered = sorted(entries, key=lambda e: e.created, reverse=True)
    results = []
    for run in dict.fromkeys(e.run for e in ordered):
        mine = [e for e in ordered if e.run == run]
        async with reverting(ledger, run):
            now = _current(ledger, run)
            fresh = [e if now is None else now.get(e.id, e) for e in mine]
            outcomes = await _revert_and_record(run, [(e.id, e.revert) for e in fresh], now,
                                                ledger, adapters, by=by)
        results += [RevertResult(e, outcome, error) for e, (outcome, error) in zip(fresh, outcomes)]
    return results


def runner_alive(info: RunInfo) -> bool:
    try:
        proc = psutil.Process(info.pid)
        return abs(proc.create_time() - info.pid_create_time) < 0.05 and (
            proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
