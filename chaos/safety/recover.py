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
    try:
        outcome = await adapters.revert(spec)
        failpoints.hit("after_revert")
    except ChaosError as exc:
        error = truncate(str(exc))
        ledger.revert_failed(run, ident, by=by, error=error)
        log.error("revert of %s failed: %s", ident, error)
        return "failed", error
    ledger.reverted(run, ident, by=by, outcome=outcome)
    return outcome, ""


async def revert_all(entries: list[Entry], ledger: Ledger, adapters: AdapterRegistry, *,
                     by: str) -> list[RevertResult]:
    """Newest first, like a stack: later faults may build on earlier ones."""
    results = []
    for entry in sorted(entries, key=lambda e: e.created, reverse=True):
        outcome, error = await revert_spec(entry.run, entry.id, entry.revert, ledger, adapters,
                                           by=by)
        results.append(RevertResult(entry, outcome, error))
    return results


def runner_alive(info: RunInfo) -> bool:
    try:
        proc = psutil.Process(info.pid)
        return abs(proc.create_time() - info.pid_create_time) < 0.05 and (
            proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
