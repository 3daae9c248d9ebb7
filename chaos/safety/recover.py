"""Revert injections from their revert specs: used by the runner, the watchdog, `chaos stop`
and `chaos recover` alike, so there is exactly one way to undo an injection.

Ledger appends here are synchronous on purpose: each is one small write + fsync, and the
write-ahead protocol needs them ordered with the reverts and untorn by task cancellation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psutil

from chaos.adapters.registry import AdapterRegistry
from chaos.errors import ChaosError, truncate
from chaos.safety import failpoints
from chaos.safety.ledger import Entry, Ledger, RunInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RevertResult:
    entry: Entry
    outcome: str  # reverted | gone | nothing | failed
    error: str = ""


async def revert_spec(run: str, ident: str, spec: Mapping[str, Any], ledger: Ledger,
                      adapters: AdapterRegistry, *, by: str) -> tuple[str, str]:
    """(outcome, error): outcome is reverted | gone | nothing | failed."""
    return (await revert_many(run, [(ident, spec)], ledger, adapters, by=by))[0]


async def revert_many(run: str, items: list[tuple[str, Mapping[str, Any]]], ledger: Ledger,
                      adapters: AdapterRegistry, *, by: str) -> list[tuple[str, str]]:
    """Revert (id, spec) pairs of one run in this order; (outcome, error) for each.

    Every target is reverted on its own from its spec; the successes are recorded in one
    `reverted` record at the end (a failure at once), so a thousand targets cost one fsync.
    Dying before that record only means the next reverter does them again (idempotent).
    """
    results: list[tuple[str, str]] = []
    done: dict[str, str] = {}
    for ident, spec in items:
        try:
            outcome = await adapters.revert(spec)
            failpoints.hit("after_revert")
        except ChaosError as exc:
            error = truncate(str(exc))
            ledger.revert_failed(run, ident, by=by, error=error)
            log.error("revert of %s failed: %s", ident, error)
            results.append(("failed", error))
            continue
        done[ident] = outcome
        results.append((outcome, ""))
    if done:
        ledger.reverted_all(run, done, by=by)
    return results


async def revert_all(entries: list[Entry], ledger: Ledger, adapters: AdapterRegistry, *,
                     by: str) -> list[RevertResult]:
    """Newest first, like a stack: later faults may build on earlier ones."""
    ordered = sorted(entries, key=lambda e: e.created, reverse=True)
    results = []
    for run in dict.fromkeys(e.run for e in ordered):
        mine = [e for e in ordered if e.run == run]
        outcomes = await revert_many(run, [(e.id, e.revert) for e in mine], ledger, adapters,
                                     by=by)
        results += [RevertResult(e, outcome, error) for e, (outcome, error) in zip(mine, outcomes)]
    return results


def runner_alive(info: RunInfo) -> bool:
    try:
        proc = psutil.Process(info.pid)
        return abs(proc.create_time() - info.pid_create_time) < 0.05 and (
            proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
