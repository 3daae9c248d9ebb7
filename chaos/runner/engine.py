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

The cancel-then-revert skeleton is chaos.runner.lifecycle's (shared with the Chaos Toolkit
engine): a signal the caller routes to the run's `Lifecycle`, a guardrail or `stop` cancels the
work, and the cleanup - shielded, so a second signal or a cancelled caller cannot cut it short -
reverts at once, whatever the work was awaiting. The faults themselves are chaos.runner.timeline's.
The engine is given its run id, out dir and clock; it installs no signal handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from chaos.adapters.base import Adapter, TargetRef
from chaos.adapters.local.clock import skewed_services
from chaos.adapters.registry import AdapterRegistry
from chaos.clock import SYSTEM_CLOCK, Clock
from chaos.errors import ChaosError, ExitCode, FaultFailed, truncate
from chaos.model.experiment import Experiment, FaultSpec
from chaos.records import VERDICTS as VERDICTS, new_run_id as new_run_id  # chaos.ctk.engine
from chaos.runner.detection import AlertWatch
from chaos.runner.events import EventBus
from chaos.runner.lifecycle import Lifecycle
from chaos.runner.observer import Observer
from chaos.runner.outcome import as_recorded, failed_reverts, unrecorded_reverts
from chaos.runner.plan import plan
from chaos.runner.services import Services
from chaos.runner.timeline import Injection, Timeline, deadline_grace
from chaos.runner.worker_job import WorkerJob
from chaos.safety import failpoints, guards
from chaos.safety.ledger_protocol import LedgerStore
from chaos.safety.locks import TargetLocks
from chaos.safety.watchdog import HEARTBEAT_EVERY, WatchdogHandle, spawn
from chaos.slo.checks import Verdict, recovery_verdict
from chaos.slo.probe_kinds import ProbeKinds

__all__ = ["VERDICTS", "Engine", "Injection", "RunResult", "deadline_grace", "new_run_id"]

log = logging.getLogger(__name__)

Spawn = Callable[..., Awaitable[WatchdogHandle]]  # chaos.safety.watchdog.spawn


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
    """Runs one experiment. Given its run id, out dir and clock; a caller that wants signals
    routes them to `lifecycle` (chaos.runner.lifecycle.handling_signals).

    `watchdog` starts the run's watchdog process (None: none, for in-process tests whose
    adapters leave nothing behind)."""

    def __init__(self, experiment: Experiment, *, adapters: AdapterRegistry,
                 ledger: LedgerStore, bus: EventBus, run_id: str, out_dir: Path,
                 clock: Clock = SYSTEM_CLOCK, lifecycle: Lifecycle | None = None,
                 seed: int | None = None, heartbeat_timeout: float | None = None,
                 watchdog: Spawn | None = spawn, probes: ProbeKinds | None = None) -> None:
        self.experiment = experiment
        self.probes = probes  # None: the default probe kinds, plugins included
        self.adapters, self.ledger, self.bus, self.clock = adapters, ledger, bus, clock
        self.run_id, self.out_dir = run_id, out_dir
        self.lifecycle = lifecycle or Lifecycle()
        self.lifecycle.on_signal = lambda name: self.bus.emit("run.interrupted", signal=name)
        self.seed = seed if seed is not None else secrets.randbelow(2**31)
        self.heartbeat_timeout = heartbeat_timeout
        self.services = Services(experiment.services, out_dir, bus,
                                 skewed_services(experiment.faults))
        self.timeline = Timeline(run_id, experiment, adapters=adapters, ledger=ledger, bus=bus,
                                 clock=clock, scope=self,
                                 locks=TargetLocks(ledger.state_dir, run_id))
        self.observer: Observer | None = None  # with a hypothesis, from its BEFORE phase on
        self.worker_job: WorkerJob | None = None  # traffic.workers.kubernetes: pods in a Job
        self.alerts: AlertWatch | None = None  # with `detection:`, from before the services on
        self.watchdog: WatchdogHandle | None = None
        self._spawn = watchdog
        self._background: list[asyncio.Task[None]] = []  # heartbeats, following the ledger
        self._outcome: tuple[ExitCode, str] = (ExitCode.OK, "the hypothesis held")
        self._error: ChaosError | None = None

    @property
    def injections(self) -> list[Injection]:
        return self.timeline.injections

    # --- Scope, offered to adapters
    def service_pid(self, name: str) -> int | None:
        return self.services.pid(name)

    async def restart_service(self, name: str, signal_name: str | None) -> None:
        await self.services.restart(name, signal_name)

    # --- control
    def stop(self, code: ExitCode, reason: str) -> None:
        """End the run early: the revert-everything cleanup a signal triggers, with this exit
        code and reason. Call it on the run's event loop; later calls are ignored."""
        self.lifecycle.stop(code, reason)

    async def run(self) -> RunResult:
        exp = self.experiment
        me = psutil.Process()
        self.ledger.start_run(self.run_id, pid=me.pid, pid_create_time=me.create_time(),
                              title=exp.title)
        self.bus.emit("run.started", run=self.run_id, title=exp.title, source=exp.source,
                      seed=self.seed, dry_run=False)
        error = await self.lifecycle.run(self._main, self._cleanup)
        stopped = self.lifecycle.stopped
        if isinstance(error, ChaosError):
            self._error = error
            self._outcome = (error.exit_code, str(error))
        elif error is not None:  # a bug: everything was still reverted
            log.error("internal error during the run", exc_info=error)
            self._error = FaultFailed(f"internal error: {type(error).__name__}: "
                                      f"{truncate(str(error))}")
            self._outcome = (ExitCode.ABORTED, str(self._error))
        elif stopped is not None and (self.lifecycle.work_cancelled or
                                      self._outcome[0] == ExitCode.OK):
            self._outcome = stopped  # (also: a signal that arrived while cleaning up)
        return await self._finish(stopped is not None)

    async def _finish(self, stopped: bool) -> RunResult:
        self._outcome = failed_reverts(self.injections, self._outcome)
        if self.worker_job is not None and self.worker_job.failure:  # held like a fault
            self._outcome = (ExitCode.REVERT_FAILED, self.worker_job.failure)
        if self.alerts is not None:  # the faults are reverted: detection joins the verdict
            self._outcome = await self.alerts.finish(self._outcome)
        self._outcome = as_recorded(self.experiment, self.injections, self._outcome,
                                    stopped=stopped)
        unrecorded = unrecorded_reverts(self.ledger, self.run_id)
        if unrecorded is not None and self._outcome[0] != ExitCode.REVERT_FAILED:
            self._error, self._outcome = unrecorded, (ExitCode.REVERT_FAILED, str(unrecorded))
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

    async def _heartbeat(self) -> None:
        while self.watchdog is not None:
            self.watchdog.beat()
            await asyncio.sleep(HEARTBEAT_EVERY)  # real time: the watchdog is a real process

    def _on_probe_error(self, error: ChaosError) -> None:
        """A probe that cannot run at all (not: a probe that fails) stops the run."""
        if self._error is None:
            self._error = error
        self.lifecycle.stop(error.exit_code, str(error))

    async def _guarded(self) -> None:
        """The watchdog and what follows the ledger, before anything is touched."""
        if self._spawn is not None:
            kwargs = {} if self.heartbeat_timeout is None else {
                "heartbeat_timeout": self.heartbeat_timeout}
            self.watchdog = await self._spawn(self.ledger.state_dir, self.run_id, **kwargs)
            self._background.append(asyncio.create_task(self._heartbeat()))
            self.timeline.protected = guards.protected_pids([self.watchdog.pid])
        else:
            self.timeline.protected = guards.protected_pids()
        self._background.append(asyncio.create_task(self.timeline.follow_ledger()))

    async def _main(self) -> None:
        exp = self.experiment
        # refuse before starting
        for planned in await plan(exp, self.adapters, self.seed, self.ledger):
            if planned.error is not None:
                raise planned.error
        if exp.faults or (exp.hypothesis and exp.hypothesis.traffic_kubernetes):
            await self._guarded()  # a worker Job is held like a fault
        if exp.detection is not None:
            self.alerts = AlertWatch(exp.detection, self.bus)
            await self.alerts.start()
        await self.services.start_all()
        if self.alerts is not None:
            await self.alerts.services_ready()
        hyp = exp.hypothesis
        if hyp is not None and not await self._before():
            return
        await self._during()
        if hyp is not None and exp.faults:
            await self._after()
        if self.alerts is not None:
            await self.alerts.settle()

    async def _before(self) -> bool:
        """The steady state before anything is injected; False (and the outcome) if not met."""
        hyp = self.experiment.hypothesis
        assert hyp is not None
        if hyp.traffic_kubernetes is not None:
            self.worker_job = WorkerJob(self.run_id, self.experiment, ledger=self.ledger,
                                        adapters=self.adapters, clock=self.clock)
            hyp = self.worker_job.hypothesis(hyp)  # its pods join as remote workers
        seen = self.observer = Observer(hyp, self.bus, abort=self.lifecycle.stop,
                                        stopping=lambda: self.lifecycle.stopping,
                                        on_probe_error=self._on_probe_error, clock=self.clock,
                                        probes=self.probes)
        seen.start_sources()
        if self.worker_job is not None:  # listening now: the pods may join
            await self.worker_job.start()
        await seen.sources_ready()
        self.bus.emit("phase.started", phase="before")
        seen.sampler.start(hyp.before.every)
        start = self.clock.monotonic()
        await self.clock.sleep(hyp.before.window)
        if not await seen.evaluate("before", hyp.checks, start, self.clock.monotonic()):
            self._outcome = seen.invalid("before") or (
                ExitCode.STEADY_STATE_NOT_MET,
                "steady state not met before injection: " + seen.failures("before"))
            return False
        seen.sampler.every = hyp.during.every
        self.timeline.on_injected = seen.injected
        return True

    async def _during(self) -> None:
        seen = self.observer
        self.bus.emit("phase.started", phase="during")
        start = self.clock.monotonic()
        if seen is not None:
            seen.guard(start)
        try:
            await self.timeline.play(start)
        finally:
            if seen is not None:
                await seen.unguard()
        if seen is not None:  # over the faults as the ledger says they were, not a frozen wait
            last = self.timeline.last_revert
            end = last if last is not None else self.clock.monotonic()
            await seen.evaluate("during", seen.hyp.during.checks, start, max(start, end))

    async def _after(self) -> None:
        hyp, seen = self.experiment.hypothesis, self.observer
        assert hyp is not None and seen is not None
        phase = hyp.after
        self.bus.emit("phase.started", phase="after")
        last_revert = self.timeline.last_revert or self.clock.monotonic()
        seen.sampler.every = phase.every
        limit = phase.recover_within if phase.recover_within is not None else (
            phase.settle + phase.window)
        await seen.measure_recovery(last_revert, limit)
        await self.clock.sleep(max(0.0, phase.settle - (self.clock.monotonic() - last_revert)))
        start = self.clock.monotonic()
        await self.clock.sleep(phase.window)
        extra = []
        if phase.recover_within is not None:
            extra.append(recovery_verdict(seen.recovery, phase.recover_within))
        if not await seen.evaluate("after", hyp.checks, start, self.clock.monotonic(), extra):
            self._outcome = seen.invalid("after") or (
                ExitCode.DEVIATED, "hypothesis failed after the faults: " +
                seen.failures("after"))
        elif not all(v.passed for v in seen.verdicts.get("during", [])):
            self._outcome = seen.invalid("during") or (
                ExitCode.DEVIATED, "hypothesis failed during the faults: " +
                seen.failures("during"))

    async def _cleanup(self) -> None:
        """Runs whatever happened, shielded by the lifecycle: reverts, then the rest."""
        failpoints.hit("during_cleanup")
        for task in self._background[1:] if self.watchdog is not None else self._background:
            task.cancel()  # following the ledger (heartbeats go on until the reverts are done)
        job = self.worker_job
        await self.timeline.revert_everything(frozenset([job.ident]) if job else frozenset())
        if self.observer is not None:
            await self.observer.stop()
        if job is not None:  # after the traffic stopped: the pods' last lines are in
            await job.stop()
        if self.alerts is not None:
            await self.alerts.stop()
        with contextlib.suppress(Exception):
            await self.services.stop_all()
        if self.watchdog is not None:
            handle, self.watchdog = self.watchdog, None
            self._background[0].cancel()
            await handle.finish()
        self.timeline.locks.release_all()


def default_out_dir(run_id: str) -> Path:
    return Path(os.environ.get("CHAOS_RUNS_DIR", "chaos-runs")) / run_id
