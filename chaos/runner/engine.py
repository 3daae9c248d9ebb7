"""The run engine: phases, the fault timeline, guardrails, signals, and the revert guarantee.

    start watchdog + services
    BEFORE  sample the hypothesis for a window        fails => exit 3, nothing injected
    DURING  faults on their timeline: ledger intent -> inject -> applied -> (hold) -> revert
            guardrails evaluated on every sample      breach => revert everything now, exit 4
    AFTER   recovery time, settle, sample a window    fails => exit 1
    cleanup (always, uninterruptible): revert what is still open, stop services, journal

What is sampled and how checks are judged (probes, traffic, Prometheus, guardrails, the time to
detect, the recovery time) is the `Observer`'s (chaos.runner.observer); the engine decides what
happens next.

All work runs in one task. A signal or a guardrail cancels that task; the `finally` around it
reverts at once, whatever the task was awaiting (a probe, a sleep, an injection). A second
signal does not skip reverts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from chaos.adapters.base import Adapter, TargetRef
from chaos.adapters.local.clock import skewed_services
from chaos.adapters.registry import AdapterRegistry
from chaos.errors import (ChaosError, ExitCode, FaultFailed, RevertFailed, StateDirUnusable,
                          TargetNotFound, truncate)
from chaos.model.experiment import Experiment, FaultSpec, thaw
from chaos.records import VERDICTS as VERDICTS, new_run_id as new_run_id  # chaos.ctk.engine
from chaos.runner.detection import AlertWatch
from chaos.runner.events import EventBus
from chaos.runner.observer import Observer
from chaos.runner.plan import plan
from chaos.runner.services import Services
from chaos.safety import failpoints, guards
from chaos.safety.ledger import Ledger
from chaos.safety.locks import TargetLocks
from chaos.safety.recover import revert_many, revert_spec
from chaos.safety.watchdog import HEARTBEAT_EVERY, WatchdogHandle, spawn
from chaos.slo.checks import Verdict, recovery_verdict

log = logging.getLogger(__name__)

# How often a run reads its ledger while faults are held, to see reverts made by someone else
# (`chaos stop ID`, the watchdog): the ledger is the truth the journal and the live view follow.
LEDGER_POLL = 0.25
# `chaos stop RUN_ID` (or --all) reverts, then sends the runner SIGTERM: a fault ends this long
# after a revert made elsewhere, so that signal finds the run still holding and it ends as
# interrupted (143) whichever it learnt of first.
STOP_GRACE = 0.5


def deadline_grace(duration: float) -> float:
    """How long past a fault's end the watchdog waits before reverting it itself."""
    return 5.0 + 0.1 * duration


@dataclass
class Injection:
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


@dataclass
class RunResult:
    run: str
    exit_code: ExitCode
    reason: str
    error: ChaosError | None = None
    verdicts: dict[str, list[Verdict]] = field(default_factory=dict)
    injections: list[Injection] = field(default_factory=list)
    recovery: float | None = None
    detected: float | None = None  # first injection -> first failing `during` check

    @property
    def verdict(self) -> str:
        return VERDICTS[self.exit_code]


class Engine:
    def __init__(self, experiment: Experiment, *, adapters: AdapterRegistry, ledger: Ledger,
                 bus: EventBus, out_dir: Path, seed: int | None = None,
                 heartbeat_timeout: float | None = None) -> None:
        self.experiment = experiment
        self.adapters, self.ledger, self.bus = adapters, ledger, bus
        self.out_dir = out_dir
        self.run_id = new_run_id()
        self.seed = seed if seed is not None else secrets.randbelow(2**31)
        self.heartbeat_timeout = heartbeat_timeout
        self.services = Services(experiment.services, out_dir, bus,
                                 skewed_services(experiment.faults))
        self.locks = TargetLocks(ledger.state_dir, self.run_id)
        self.injections: list[Injection] = []
        self.observer: Observer | None = None  # with a hypothesis, from its BEFORE phase on
        self.alerts: AlertWatch | None = None  # with `detection:`, from before the services on
        self.watchdog: WatchdogHandle | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._work: asyncio.Task[None] | None = None
        self._stop: tuple[ExitCode, str] | None = None  # why the work was cancelled
        self._outcome: tuple[ExitCode, str] = (ExitCode.OK, "the hypothesis held")
        self._error: ChaosError | None = None
        self._during_started: float | None = None
        self._last_revert: float | None = None
        self._protected: dict[int, str] = {}
        self._ledger_task: asyncio.Task[None] | None = None
        self._ledger_seen: tuple[int, int] | None = None  # (size, mtime) of the last read
        self._ended_elsewhere: dict[int, asyncio.Event] = {}  # fault index -> all reverted

    # --- Scope, offered to adapters
    def service_pid(self, name: str) -> int | None:
        return self.services.pid(name)

    async def restart_service(self, name: str, signal_name: str | None) -> None:
        await self.services.restart(name, signal_name)

    # --- control
    def _interrupt(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stop is not None:
            log.warning("%s received while reverting: reverts always finish; please wait", name)
            return
        code = ExitCode.INTERRUPTED if signum == signal.SIGINT else ExitCode.TERMINATED
        self.bus.emit("run.interrupted", signal=name)
        self._cancel(code, f"interrupted by {name}")

    def stop(self, code: ExitCode, reason: str) -> None:
        """End the run early: the revert-everything cleanup a signal triggers, with this exit
        code and reason. Call it on the run's event loop; later calls are ignored."""
        self._cancel(code, reason)

    def _cancel(self, code: ExitCode, reason: str) -> None:
        if self._stop is None:
            self._stop = (code, reason)
            if self._work is not None:
                self._work.cancel()

    async def run(self) -> RunResult:
        loop = asyncio.get_running_loop()
        exp = self.experiment
        me = psutil.Process()
        self.ledger.start_run(self.run_id, pid=me.pid, pid_create_time=me.create_time(),
                              title=exp.title)
        self.bus.emit("run.started", run=self.run_id, title=exp.title, source=exp.source,
                      seed=self.seed, dry_run=False)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._interrupt, signum)
        try:
            self._work = asyncio.create_task(self._main(), name="chaos-run")
            try:
                await self._work
            except asyncio.CancelledError:
                if self._stop is None:
                    raise
                self._outcome = self._stop
            except ChaosError as exc:
                self._error = exc
                self._outcome = (exc.exit_code, str(exc))
            except Exception as exc:  # a bug: everything is still reverted below
                log.exception("internal error during the run")
                self._error = FaultFailed(f"internal error: {type(exc).__name__}: "
                                          f"{truncate(str(exc))}")
                self._outcome = (ExitCode.ABORTED, str(self._error))
        finally:
            await self._cleanup()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        if self._stop is not None and self._outcome[0] == ExitCode.OK:
            self._outcome = self._stop  # a signal that arrived while cleaning up
        if any(i.outcome == "failed" for i in self.injections):
            failed = [i for i in self.injections if i.outcome == "failed"]
            self._outcome = (ExitCode.REVERT_FAILED,
                             "; ".join(f"revert of {i.fault.name} on {i.target.label} failed: "
                                       f"{i.error}" for i in failed))
        if self.alerts is not None:  # the faults are reverted: detection joins the verdict
            self._outcome = await self.alerts.finish(self._outcome)
        self._outcome = self._as_recorded(*self._outcome)
        self._unrecorded_reverts()
        code, reason = self._outcome
        self.ledger.finish_run(self.run_id, exit_code=int(code))
        self.bus.emit("run.finished", run=self.run_id, verdict=VERDICTS[code],
                      exit_code=int(code), reason=reason)
        seen = self.observer
        verdicts = {**(seen.verdicts if seen else {}),
                    **({"detection": self.alerts.verdicts} if self.alerts else {})}
        return RunResult(self.run_id, code, reason, self._error, verdicts,
                         self.injections, seen.recovery if seen else None,
                         seen.detected if seen else None)

    def _as_recorded(self, code: ExitCode, reason: str) -> tuple[ExitCode, str]:
        """The outcome, checked against what was injected: a fault that hit nothing never
        lets a run pass, and a fault someone else ended early is said so."""
        if code != ExitCode.OK and code != ExitCode.DEVIATED:
            return code, reason
        idle = [f.name for f in self.experiment.faults
                if not any(i.fault.index == f.index and i.injected_at is not None
                           for i in self.injections)]
        if code == ExitCode.OK and idle and self._stop is None:  # (not: stopped on purpose)
            return ExitCode.INVALID, (f"nothing was injected by {', '.join(idle)}: a fault that "
                                      "hits nothing proves nothing")
        early = [f"{i.fault.name} on {i.target.label} was reverted by {i.by} at "
                 f"{i.reverted_at:.1f}s, before its planned end"
                 for i in self.injections if i.by not in ("", "runner")
                 and i.reverted_at is not None and i.reverted_at >= 0]
        if not early:
            return code, reason
        if code == ExitCode.OK and self.experiment.hypothesis is not None:
            # the checks held, but for a shorter fault than the experiment declares: that is not
            # the experiment that passed review, so it is no pass (a failure stays a failure)
            return ExitCode.ABORTED, ("the hypothesis was not tested for the faults' planned "
                                      "durations: " + "; ".join(early))
        return code, reason + "; " + "; ".join(early)

    def _unrecorded_reverts(self) -> None:
        """Reverted, but the ledger could not say so: exit 5, so nobody trusts a ledger that
        still shows the entries open, and `chaos recover` closes them once it can write."""
        missing = [u for u in self.ledger.unrecorded_of(self.run_id) if u.event != "finished"]
        if missing and self._outcome[0] != ExitCode.REVERT_FAILED:
            self._error = RevertFailed(
                f"reverted, but could not record it in the ledger ({len(missing)} record(s) "
                f"missing): {missing[0].error}",
                hint="run `chaos recover` once the state dir is writable "
                     f"({self.ledger.state_dir}); until then `chaos status` shows these "
                     "injections as open")
            self._outcome = (ExitCode.REVERT_FAILED, str(self._error))

    async def _heartbeat(self) -> None:
        while self.watchdog is not None:
            self.watchdog.beat()
            await asyncio.sleep(HEARTBEAT_EVERY)

    def _on_probe_error(self, error: ChaosError) -> None:
        """A probe that cannot run at all (not: a probe that fails) stops the run."""
        if self._error is None:
            self._error = error
        self._cancel(error.exit_code, str(error))

    async def _main(self) -> None:
        exp = self.experiment
        # refuse before starting
        for planned in await plan(exp, self.adapters, self.seed, self.ledger):
            if planned.error is not None:
                raise planned.error
        if exp.faults:
            kwargs = {} if self.heartbeat_timeout is None else {
                "heartbeat_timeout": self.heartbeat_timeout}
            self.watchdog = await spawn(self.ledger.state_dir, self.run_id, **kwargs)
            self._heartbeat_task = asyncio.create_task(self._heartbeat())
            self._ledger_task = asyncio.create_task(self._follow_ledger())
            self._protected = guards.protected_pids([self.watchdog.pid])
        if exp.detection is not None:
            self.alerts = AlertWatch(exp.detection, self.bus)
            await self.alerts.start()
        await self.services.start_all()
        hyp = exp.hypothesis
        if hyp is not None:
            seen = self.observer = Observer(hyp, self.bus, abort=self._cancel,
                                            stopping=lambda: self._stop is not None,
                                            on_probe_error=self._on_probe_error)
            seen.start_sources()
            await seen.sources_ready()
            self.bus.emit("phase.started", phase="before")
            seen.sampler.start(hyp.before.every)
            start = time.monotonic()
            await asyncio.sleep(hyp.before.window)
            if not await seen.evaluate("before", hyp.checks, start, time.monotonic()):
                self._outcome = seen.invalid("before") or (
                    ExitCode.STEADY_STATE_NOT_MET,
                    "steady state not met before injection: " + seen.failures("before"))
                return
            seen.sampler.every = hyp.during.every
        await self._during()
        if hyp is not None and exp.faults:
            await self._after()
        if self.alerts is not None:
            await self.alerts.settle()

    async def _during(self) -> None:
        seen = self.observer
        self.bus.emit("phase.started", phase="during")
        start = self._during_started = time.monotonic()
        if seen is not None:
            seen.guard(start)
        try:
            async with asyncio.TaskGroup() as group:
                for fault in self.experiment.faults:
                    group.create_task(self._fault(fault), name=f"fault:{fault.name}")
        except ExceptionGroup as group:  # one fault failed: the rest were cancelled
            raise group.exceptions[0] from None
        finally:
            if seen is not None:
                await seen.unguard()
        if seen is not None:  # over the faults as the ledger says they were, not a frozen wait
            end = self._last_revert if self._last_revert is not None else time.monotonic()
            await seen.evaluate("during", seen.hyp.during.checks, start, max(start, end))

    async def _after(self) -> None:
        hyp, seen = self.experiment.hypothesis, self.observer
        assert hyp is not None and seen is not None
        phase = hyp.after
        self.bus.emit("phase.started", phase="after")
        last_revert = self._last_revert or time.monotonic()
        seen.sampler.every = phase.every
        limit = phase.recover_within if phase.recover_within is not None else (
            phase.settle + phase.window)
        await seen.measure_recovery(last_revert, limit)
        await asyncio.sleep(max(0.0, phase.settle - (time.monotonic() - last_revert)))
        start = time.monotonic()
        await asyncio.sleep(phase.window)
        extra = []
        if phase.recover_within is not None:
            extra.append(recovery_verdict(seen.recovery, phase.recover_within))
        if not await seen.evaluate("after", hyp.checks, start, time.monotonic(), extra):
            self._outcome = seen.invalid("after") or (
                ExitCode.DEVIATED, "hypothesis failed after the faults: " +
                seen.failures("after"))
        elif not all(v.passed for v in seen.verdicts.get("during", [])):
            self._outcome = seen.invalid("during") or (
                ExitCode.DEVIATED, "hypothesis failed during the faults: " +
                seen.failures("during"))

    # --- faults
    async def _sleep_until(self, offset: float) -> None:
        assert self._during_started is not None
        delay = self._during_started + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _fault(self, fault: FaultSpec) -> None:
        await self._sleep_until(fault.start)
        adapter = self.adapters.route(fault.type, fault.target.kind)
        targets = await adapter.resolve(fault, self)
        if not targets:  # whatever the adapter (a plugin's too): a fault that hits nothing fails
            raise TargetNotFound(f"{fault.name}: {fault.target.describe()} matches nothing; "
                                 "nothing was injected")
        guards.check_targets(fault, targets, self.experiment.limits,
                             {**guards.other_runs(self.ledger, self.run_id), **self._protected})
        self.bus.emit("fault.planned", fault=fault.name, type=fault.type,
                      targets=[t.label for t in targets])
        for target in targets:
            self.locks.acquire(target.lock_key, target.label)
        mine = await self._inject_all(fault, adapter, targets)
        if not fault.duration:  # instant faults: nothing is held, close the entries
            await self._revert_all(mine, by="runner")
            return
        await self._hold(fault)
        self._follow_reverts()
        await self._revert_all(mine[::-1], by="runner")

    async def _hold(self, fault: FaultSpec) -> None:
        """Until the fault's end, or until someone else (`chaos stop`, the watchdog) has
        reverted every one of its injections."""
        assert self._during_started is not None
        ended = self._ended_elsewhere.setdefault(fault.index, asyncio.Event())
        delay = self._during_started + fault.end - time.monotonic()
        if delay > 0 and not ended.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), delay)

    async def _follow_ledger(self) -> None:
        while True:
            await asyncio.sleep(LEDGER_POLL)
            self._follow_reverts()

    def _follow_reverts(self) -> None:
        """The ledger is the truth: an injection someone else reverted is closed here with
        their name and the time they recorded, and is not reverted again."""
        held = [i for i in self.injections if i.outcome == "injected" and i.reverted_at is None]
        if not held:
            return
        try:
            stat = os.stat(self.ledger.path(self.run_id))
            seen = (stat.st_size, stat.st_mtime_ns)
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
            ago = max(0.0, time.time() - entry.updated)
            at = max(self.bus.elapsed() - ago, injection.injected_at or 0.0)
            injection.reverted_at = round(at, 4)
            injection.outcome, injection.by = "reverted", entry.reverted_by or "someone else"
            self._last_revert = max(self._last_revert or 0.0, time.monotonic() - ago)
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
        now = time.time()
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
            return await injection.adapter.inject(fault, target, injection.spec, self)
        except ChaosError as exc:
            injection.outcome, injection.error = "failed-inject", truncate(str(exc))
            self.bus.emit("fault.failed", fault=fault.name, target=target.label,
                          error=injection.error)
            raise
        except Exception as exc:
            injection.outcome, injection.error = "failed-inject", truncate(str(exc))
            self.bus.emit("fault.failed", fault=fault.name, target=target.label,
                          error=injection.error)
            raise FaultFailed(f"{fault.name} on {target.label}: {type(exc).__name__}: "
                              f"{truncate(str(exc))}") from exc

    def _injected(self, injection: Injection) -> None:
        fault = injection.fault
        injection.injected_at = round(self.bus.elapsed(), 4)
        if self.observer is not None:
            self.observer.injected(fault.name)
        injection.outcome = "injected"
        self.bus.emit("fault.injected", fault=fault.name, type=fault.type,
                      injection=injection.id, target=injection.target.label,
                      duration=fault.duration, deadline=time.time() + fault.duration)

    async def _revert_all(self, injections: list[Injection], *, by: str) -> None:
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
        self._last_revert = time.monotonic()
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

    async def _cleanup(self) -> None:
        """Runs whatever happened; must not be cancelled half-way (shielded by the caller)."""
        failpoints.hit("during_cleanup")
        if self._ledger_task is not None:
            self._ledger_task.cancel()
        self._follow_reverts()  # e.g. the watchdog reverted while this runner was frozen
        await self._revert_all(self.injections[::-1], by="runner")
        known = {i.id for i in self.injections}
        try:
            leftover = self.ledger.open_entries(self.run_id)
        except OSError as exc:
            log.error("cannot read the ledger for a last check: %s", exc)
            leftover = []
        for entry in leftover:  # belt and braces
            if entry.id not in known:
                await revert_spec(self.run_id, entry.id, entry.revert, self.ledger,
                                  self.adapters, by="runner")
        if self.observer is not None:
            await self.observer.stop()
        with contextlib.suppress(Exception):
            await self.services.stop_all()
        if self.watchdog is not None:
            handle, self.watchdog = self.watchdog, None
            if self._heartbeat_task is not None:
                self._heartbeat_task.cancel()
            await handle.finish()
        self.locks.release_all()


def default_out_dir(run_id: str) -> Path:
    return Path(os.environ.get("CHAOS_RUNS_DIR", "chaos-runs")) / run_id
