"""The faults of one run on their timeline: write-ahead, inject, hold, revert.

Each fault waits for its `start`, resolves its targets, passes the guards and takes the target
locks, then follows the ledger protocol for its whole target set: one durable intent before any
target is touched, each target, one `applied`; it holds until its end (or until someone else -
`chaos stop`, the watchdog - reverted all of it) and reverts in reverse order. The engine
(chaos.runner.engine) decides when the timeline starts and is cancelled; `revert_everything` is
the cleanup's half of the revert guarantee.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaos.adapters.base import Adapter, Scope, TargetRef
from chaos.adapters.registry import AdapterRegistry
from chaos.clock import Clock
from chaos.errors import ChaosError, FaultFailed, StateDirUnusable, TargetNotFound, truncate
from chaos.model.experiment import Experiment, FaultSpec, thaw
from chaos.runner.events import EventBus
from chaos.safety import failpoints, guards
from chaos.safety.ledger_protocol import LedgerStore
from chaos.safety.locks import TargetLocks
from chaos.safety.recover import revert_many, revert_spec

log = logging.getLogger(__name__)

# How often a run reads its ledger while faults are held, to see reverts made by someone else
# (`chaos stop ID`, the watchdog): the ledger is the truth the journal and the live view follow.
LEDGER_POLL = 0.25
# `chaos stop RUN_ID` (or --all) reverts, then sends the runner SIGTERM: a fault ends this long
# after a revert made elsewhere, so that signal finds the run still holding and it ends as
# interrupted (143) whichever it learnt of first.
STOP_GRACE = 0.5


@dataclass
class Injection:
    """One fault on one target, as the run holds it: its revert spec and what became of it."""

    id: str
    fault: FaultSpec
    target: TargetRef
    adapter: Adapter
    spec: dict[str, Any]
    injected_at: float | None = None  # seconds since run start
    reverted_at: float | None = None
    outcome: str = "pending"  # pending | injected | reverted | gone | nothing | failed
    by: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "fault": self.fault.name, "type": self.fault.type,
                "target": self.target.label, "identity": thaw(self.target.identity),
                "injected_at": self.injected_at, "reverted_at": self.reverted_at,
                "outcome": self.outcome, "reverted_by": self.by, "error": self.error,
                "revert_spec": self.spec}


def deadline_grace(duration: float) -> float:
    """How long past a fault's end the watchdog waits before reverting it itself."""
    return 5.0 + 0.1 * duration


class Timeline:
    """One run's injections, from intent to revert."""

    def __init__(self, run_id: str, experiment: Experiment, *, adapters: AdapterRegistry,
                 ledger: LedgerStore, bus: EventBus, clock: Clock, scope: Scope,
                 locks: TargetLocks) -> None:
        self.run_id, self.experiment = run_id, experiment
        self.adapters, self.ledger, self.bus, self.clock = adapters, ledger, bus, clock
        self.scope, self.locks = scope, locks
        self.injections: list[Injection] = []
        self.started: float | None = None  # monotonic, when the during phase started
        self.last_revert: float | None = None
        self.protected: dict[int, str] = {}  # pids no fault may hit (the watchdog, ...)
        self.on_injected: Callable[[str], None] = lambda fault: None  # the observer's
        self._ledger_seen: object = None  # the ledger's revision at the last read
        self._ended_elsewhere: dict[int, asyncio.Event] = {}  # fault index -> all reverted

    async def play(self, started: float) -> None:
        """Every fault on its timeline from `started`; the first failure cancels the rest."""
        self.started = started
        try:
            async with asyncio.TaskGroup() as group:
                for fault in self.experiment.faults:
                    group.create_task(self._fault(fault), name=f"fault:{fault.name}")
        except ExceptionGroup as group:  # one fault failed: the rest were cancelled
            raise group.exceptions[0] from None

    async def _sleep_until(self, offset: float) -> float:
        assert self.started is not None
        delay = self.started + offset - self.clock.monotonic()
        if delay > 0:
            await self.clock.sleep(delay)
        return delay

    async def _fault(self, fault: FaultSpec) -> None:
        await self._sleep_until(fault.start)
        adapter = self.adapters.route(fault.type, fault.target.kind)
        targets = await adapter.resolve(fault, self.scope)
        if not targets:  # whatever the adapter (a plugin's too): a fault that hits nothing fails
            raise TargetNotFound(f"{fault.name}: {fault.target.describe()} matches nothing; "
                                 "nothing was injected")
        guards.check_targets(fault, targets, self.experiment.limits,
                             {**guards.other_runs(self.ledger, self.run_id), **self.protected})
        self.bus.emit("fault.planned", fault=fault.name, type=fault.type,
                      targets=[t.label for t in targets])
        for target in targets:
            self.locks.acquire(target.lock_key, target.label)
        mine = await self._inject_all(fault, adapter, targets)
        if not fault.duration:  # instant faults: nothing is held, close the entries
            await self.revert_all(mine, by="runner")
            return
        await self._hold(fault)
        self.follow_reverts()
        await self.revert_all(mine[::-1], by="runner")

    async def _hold(self, fault: FaultSpec) -> None:
        """Until the fault's end, or until someone else (`chaos stop`, the watchdog) has
        reverted every one of its injections."""
        ended = self._ended_elsewhere.setdefault(fault.index, asyncio.Event())
        if ended.is_set():
            return
        waiting = asyncio.ensure_future(ended.wait())
        sleeping = asyncio.ensure_future(self._sleep_until(fault.end))
        try:
            await asyncio.wait((waiting, sleeping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiting, sleeping):
                task.cancel()

    async def follow_ledger(self) -> None:
        while True:
            await self.clock.sleep(LEDGER_POLL)
            self.follow_reverts()

    def follow_reverts(self) -> None:
        """The ledger is the truth: an injection someone else reverted is closed here with
        their name and the time they recorded, and is not reverted again."""
        held = [i for i in self.injections if i.outcome == "injected" and i.reverted_at is None]
        if not held:
            return
        try:
            seen = self.ledger.revision(self.run_id)
            if seen == self._ledger_seen:
                return
            entries = {e.id: e for e in self.ledger.entries(self.run_id)}
            self._ledger_seen = seen
        except Exception as exc:  # noqa: BLE001 - reading is advisory; reverts never wait on it
            log.warning("could not read the ledger to follow reverts: %s", truncate(str(exc)))
            return
        for injection in held:
            entry = entries.get(injection.id)
            if entry is None or entry.state != "reverted" or entry.reverted_by == "runner":
                continue
            ago = max(0.0, self.clock.time() - entry.updated)
            at = max(self.bus.elapsed() - ago, injection.injected_at or 0.0)
            injection.reverted_at = round(at, 4)
            injection.outcome, injection.by = "reverted", entry.reverted_by or "someone else"
            self.last_revert = max(self.last_revert or 0.0, self.clock.monotonic() - ago)
            self.bus.emit("fault.reverted", fault=injection.fault.name, injection=injection.id,
                          target=injection.target.label, outcome=injection.outcome,
                          by=injection.by, at=injection.reverted_at)
            index = injection.fault.index
            if all(i.reverted_at is not None for i in self.injections
                   if i.fault.index == index):
                ended = self._ended_elsewhere.setdefault(index, asyncio.Event())
                asyncio.get_running_loop().call_later(max(0.0, STOP_GRACE - ago), ended.set)

    async def _inject_all(self, fault: FaultSpec, adapter: Adapter,
                          targets: list[TargetRef]) -> list[Injection]:
        """Write-ahead for the whole target set: one durable intent before any target is
        touched, then each target, then one `applied` (also for the ones done when a later
        target fails, which then raises)."""
        first = len(self.injections)
        mine = [Injection(f"{self.run_id}.{fault.index}.{first + k}", fault, target, adapter,
                          adapter.prepare(fault, target)) for k, target in enumerate(targets)]
        now = self.clock.time()
        failpoints.hit("before_intent")
        try:
            self.ledger.intents(
                self.run_id, [(i.id, i.target.label, i.spec) for i in mine], fault=fault.type,
                deadline=now + fault.duration + deadline_grace(fault.duration)
                if fault.duration else None,
                ends=now + fault.duration if fault.duration else None)
        except StateDirUnusable as exc:  # no durable intent, no injection
            where = mine[0].target.label if len(mine) == 1 else f"{len(mine)} targets"
            raise StateDirUnusable(f"{fault.name} on {where} refused, nothing injected: {exc}",
                                   directory=exc.directory, errno_name=exc.errno_name) from exc
        self.injections.extend(mine)
        failpoints.hit("after_intent")
        refined: dict[str, dict[str, Any] | None] = {}
        try:
            for injection in mine:
                spec = await self._inject(injection)
                refined[injection.id] = spec if spec != injection.spec else None
                injection.spec = spec
                failpoints.hit("after_inject")
            failpoints.hit("before_applied")
        finally:
            if refined:
                self.ledger.applied_all(self.run_id, refined)
                failpoints.hit("after_applied")
                for injection in mine[:len(refined)]:
                    self._injected(injection)
        return mine

    async def _inject(self, injection: Injection) -> dict[str, Any]:
        """Touch one target (its intent is durable); the adapter's refined revert spec."""
        fault, target = injection.fault, injection.target
        try:
            return await injection.adapter.inject(fault, target, injection.spec, self.scope)
        except Exception as exc:
            injection.outcome, injection.error = "failed-inject", truncate(str(exc))
            self.bus.emit("fault.failed", fault=fault.name, target=target.label,
                          error=injection.error)
            if isinstance(exc, ChaosError):
                raise
            raise FaultFailed(f"{fault.name} on {target.label}: {type(exc).__name__}: "
                              f"{truncate(str(exc))}") from exc

    def _injected(self, injection: Injection) -> None:
        fault = injection.fault
        injection.injected_at = round(self.bus.elapsed(), 4)
        self.on_injected(fault.name)
        injection.outcome = "injected"
        self.bus.emit("fault.injected", fault=fault.name, type=fault.type,
                      injection=injection.id, target=injection.target.label,
                      duration=fault.duration, deadline=self.clock.time() + fault.duration)

    async def revert_all(self, injections: list[Injection], *, by: str) -> None:
        """Revert these, in this order, recorded as one `reverted` (see revert_many)."""
        mine = [i for i in injections if i.reverted_at is None]
        if not mine:
            return
        for injection in mine:
            injection.reverted_at = -1.0  # claimed: a concurrent cleanup will not revert it twice
        failpoints.hit("before_revert")
        try:
            results = await revert_many(self.run_id, [(i.id, i.spec) for i in mine],
                                        self.ledger, self.adapters, by=by)
        except BaseException:
            for injection in mine:  # cut short: the cleanup reverts them (idempotent)
                injection.reverted_at = None
            raise
        failpoints.hit("after_reverted")
        self.last_revert = self.clock.monotonic()
        for injection, (outcome, error) in zip(mine, results):
            injection.reverted_at = round(self.bus.elapsed(), 4)
            injection.outcome, injection.by = outcome, by
            injection.error = error or injection.error
            if outcome == "failed":
                self.bus.emit("fault.revert_failed", fault=injection.fault.name,
                              injection=injection.id, target=injection.target.label,
                              error=error)
            else:
                self.bus.emit("fault.reverted", fault=injection.fault.name,
                              injection=injection.id, target=injection.target.label,
                              outcome=outcome, by=by, at=injection.reverted_at)

    async def revert_everything(self, keep: frozenset[str] = frozenset()) -> None:
        """The cleanup's revert: everything still held, newest first, then (belt and braces)
        whatever the ledger still shows open for this run, but for the entries in `keep`,
        which their owner closes a moment later (the traffic workers' Job)."""
        self.follow_reverts()  # e.g. the watchdog reverted while this runner was frozen
        await self.revert_all(self.injections[::-1], by="runner")
        known = {i.id for i in self.injections} | keep
        try:
            leftover = self.ledger.open_entries(self.run_id)
        except OSError as exc:
            log.error("cannot read the ledger for a last check: %s", exc)
            leftover = []
        for entry in leftover:
            if entry.id not in known:
                await revert_spec(self.run_id, entry.id, entry.revert, self.ledger,
                                  self.adapters, by="runner")
