"""Chaos Toolkit experiments run with our promises, through chaoslib's own pieces.

chaoslib decides everything about an activity: providers (python, process, http) and their
timeouts, pauses, `${}` substitution, configuration and secrets, tolerances, activity- and
hypothesis-level controls (`execute_activity`, `run_steady_state_hypothesis`). What we replace
is its loop (chaoslib.run.Runner._run), for the promises it cannot keep:

    configure -> controls begin -> hypothesis BEFORE  not met: exit 3 (Chaos Toolkit: 0)
      -> METHOD (background activities as tasks; continuous hypothesis as a task)
      -> hypothesis AFTER                             not met: exit 1
    cleanup (always): stop waiting for what still runs, kill process-provider sessions,
      rollbacks (our default: whenever the method started, also on failure and signals),
      revert what chaos.ctk.actions still holds, controls end

Every blocking chaoslib call runs on an abandonable thread (chaos.ctk.blocking): SIGINT/SIGTERM
cancel the work task and the rollbacks start within milliseconds, even while a 15 s background
action or a continuous hypothesis probe is running (so do chaoslib.exit's SIGUSR1/SIGUSR2, a
control's InterruptExecution and sys.exit() in a control or an activity: exit 4). A second
signal does not skip rollbacks.
The Chaos Toolkit journal (status, deviated, steady_states, run, rollbacks) is kept exactly as
chaoslib would, so its outcome can be compared and its tools can read it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import UTC, datetime
from typing import Any

from chaos.ctk import blocking, keeper
from chaos.ctk.controls import Controls, configure
from chaos.ctk.document import CtkExperiment
from chaos.ctk.keeper import KEEPER
from chaos.ctk.options import CtkOptions, CtkResult
from chaos.ctk.verdicts import (activity_error, journal_status, probe_verdicts, settled,
                                unmet_because)
from chaos.errors import ChaosError, ExitCode, truncate
from chaos.runner.engine import VERDICTS, Injection
from chaos.runner.events import Event, EventBus
from chaos.runner.lifecycle import INTERRUPTS, Lifecycle, interrupted

__all__ = ["SIGNALS", "CtkEngine", "CtkOptions", "CtkResult"]

log = logging.getLogger(__name__)

BEFORE = ("default", "before-method-only", "continuously", "continuous")
DURING = ("during-method-only", "continuously", "continuous")
AFTER = ("default", "after-method-only", "continuously", "continuous")
STOPPED = ("aborted", "failed", "interrupted")
# SIGUSR1/SIGUSR2 are how chaoslib.exit.exit_gracefully/exit_ungracefully (and controls such
# as chaostoolkit-addons' safeguards) end an experiment; unhandled, they would kill us before
# any rollback: whoever runs a Chaos Toolkit experiment routes these to its lifecycle
SIGNALS = (*INTERRUPTS, signal.SIGUSR1, signal.SIGUSR2)


class CtkEngine:
    def __init__(self, experiment: CtkExperiment, options: CtkOptions, bus: EventBus, *,
                 run_id: str, lifecycle: Lifecycle | None = None) -> None:
        """Given its run id; a caller that wants signals routes them (SIGNALS) to
        `lifecycle` (chaos.runner.lifecycle.handling_signals)."""
        self.experiment, self.options, self.bus = experiment, options, bus
        self.run_id = run_id
        self.lifecycle = lifecycle or Lifecycle()
        self.lifecycle.signal_outcome = self._signal_outcome
        self.lifecycle.on_signal = lambda name: self.bus.emit("run.interrupted", signal=name)
        self.doc = experiment.copy()
        runtime = self.doc.get("runtime") or {}
        hyp = runtime.get("hypothesis") or {}
        self.rollback_strategy = (options.rollback_strategy or
                                  (runtime.get("rollbacks") or {}).get("strategy") or "default")
        self.hypothesis_strategy = options.hypothesis_strategy or hyp.get("strategy") or "default"
        self.frequency = float(options.hypothesis_frequency or hyp.get("frequency") or 1.0)
        self.fail_fast = bool(hyp.get("fail_fast", False) if options.fail_fast is None
                              else options.fail_fast)
        self.journal: dict[str, Any] = {"status": None, "deviated": False, "run": [],
                                        "rollbacks": [], "steady_states": {
                                            "before": None, "after": None, "during": []}}
        self.controls = Controls(self.doc)
        self._started = time.time()
        self._tasks: list[asyncio.Task[Any]] = []
        self._held: list[Injection] = []  # what chaos.ctk.actions injected, once reverted
        self._outcome: tuple[ExitCode, str] = (ExitCode.OK, "the steady state held")
        self._error: ChaosError | None = None
        self._method_started = False
        self._interrupted = False  # InterruptExecution from a control or an activity
        self._during_failed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unfinished: set[int] = set()  # id() of injections still held after stop_all

    # --- control
    def _signal_outcome(self, signum: int) -> tuple[ExitCode, str]:
        self.journal["status"] = "interrupted"
        if signum in INTERRUPTS:
            return interrupted(signum)
        # an activity called chaoslib.exit.exit_gracefully / exit_ungracefully
        name = signal.Signals(signum).name
        return (ExitCode.ABORTED,
                f"aborted: {name} (chaoslib.exit: an activity or a control ended the run)")

    def _relay(self, event: Event) -> None:
        """chaos.ctk.actions injections (on the keeper's thread) show up in this run's events."""
        if self._loop is not None and event.name.startswith("fault."):
            self._loop.call_soon_threadsafe(lambda: self.bus.emit(event.name, **event.data))

    async def run(self) -> CtkResult:
        from chaoslib.caching import cache_activities, clear_cache
        from chaoslib.run import initialize_run_journal

        self._loop = asyncio.get_running_loop()
        exp = self.experiment
        if not log.isEnabledFor(logging.DEBUG):  # its log lines repeat what our events say
            logging.getLogger("chaostoolkit").setLevel(logging.CRITICAL)
        self.bus.emit("run.started", run=self.run_id, title=exp.title, source=exp.source,
                      seed=None, dry_run=False)
        blocking.install()
        mark = len(KEEPER.held)
        KEEPER.listeners.append(self._relay)
        self.journal = initialize_run_journal(self.doc)
        cache_activities(self.doc)
        try:
            self._judge_error(await self.lifecycle.run(self._main, lambda: self._cleanup(mark)))
        finally:
            KEEPER.listeners.remove(self._relay)
            clear_cache()
        code, reason = self._final(self._held)
        self.bus.emit("run.finished", run=self.run_id, verdict=VERDICTS[code],
                      exit_code=int(code), reason=reason)
        return CtkResult(self.run_id, code, reason, self._finish_journal(), self._held,
                         self._error, self.rollback_strategy, self.hypothesis_strategy)

    def _judge_error(self, error: Exception | None) -> None:
        """What the method's error (or a stop) means, as Chaos Toolkit records it."""
        from chaoslib.exceptions import InterruptExecution

        if isinstance(error, ChaosError):
            self._error, self._outcome = error, (error.exit_code, str(error))
            self.journal["status"] = "aborted"
        elif isinstance(error, blocking.Exited):
            self._exited(error)
        elif isinstance(error, InterruptExecution):  # a control or an activity stopped the run
            self.journal["status"] = "interrupted"  # as chaoslib records it
            self._interrupted = True
            self._outcome = (ExitCode.ABORTED, f"interrupted: {truncate(str(error))}")
        elif error is not None:  # an unexpected error in the method: Chaos Toolkit aborts
            log.debug("the experiment raised", exc_info=error)
            self.journal["status"] = "aborted"
            reason = f"aborted: {type(error).__name__}: {truncate(str(error))}"
            self._outcome = (ExitCode.ABORTED, reason)
        if self.lifecycle.stopped is not None:
            self._outcome = self.lifecycle.stopped

    def _exited(self, exc: blocking.Exited) -> None:
        """sys.exit() in a control or a python activity: chaoslib records the run as
        interrupted (its default strategy then skips the rollbacks) and exits with that code;
        we record it the same, play the rollbacks, and exit 4 whatever the code (a
        SystemExit(0) must not end as a passing CI gate)."""
        self.journal["status"] = "interrupted"
        self._interrupted = True
        if self._outcome[0] in (ExitCode.OK, ExitCode.DEVIATED):
            self._outcome = (ExitCode.ABORTED, f"interrupted: {exc} raised by a control or "
                                               "a python activity")

    async def _hook(self, func: Any, *args: Any) -> None:
        """A control hook during cleanup: a SystemExit there is recorded; cleanup goes on."""
        try:
            await blocking.in_thread(func, *args)
        except blocking.Exited as exc:
            self._exited(exc)

    def _final(self, injections: list[Injection]) -> tuple[ExitCode, str]:
        # a control may append anything to these lists (chaoslib keeps it): runs are mappings
        failed = [r for r in self.journal.get("rollbacks", [])
                  if isinstance(r, dict) and r.get("status") == "failed"]
        failed_reverts = [i for i in injections if i.outcome == "failed"]
        # not reverted within the keeper's stop limit: still held, so not reverted either
        unfinished = [i for i in injections if id(i) in self._unfinished]
        if failed or failed_reverts or unfinished:
            what = [f"rollback {r['activity'].get('name')} failed: {activity_error(r)}"
                    for r in failed]
            what += [f"revert of {i.fault.type} on {i.target.label} failed: {i.error}"
                     for i in failed_reverts]
            what += [f"revert of {i.fault.type} on {i.target.label} did not finish within "
                     f"{keeper.STOP_TIMEOUT:g}s; its watchdog will finish it: check "
                     "`chaos status`" for i in unfinished]
            return ExitCode.REVERT_FAILED, "; ".join(what)
        return self._outcome

    # --- phases
    async def _main(self) -> None:
        from chaoslib import substitute

        ctl = self.controls
        ctl.config, ctl.secrets = await blocking.in_thread(
            configure, self.experiment, self.doc, self.options.config_vars,
            self.options.secret_vars)
        self.doc["title"] = substitute(self.doc["title"], ctl.config, ctl.secrets)
        self.journal["experiment"]["title"] = self.doc["title"]
        await blocking.in_thread(ctl.begin_experiment)
        hyp = self.doc.get("steady-state-hypothesis") or {}
        ssh = bool(hyp.get("probes")) and self.hypothesis_strategy != "skip"
        if ssh and self.hypothesis_strategy in BEFORE:
            state = await self._hypothesis("before")
            self.journal["steady_states"]["before"] = state
            if not state["steady_state_met"]:
                self.journal["status"] = journal_status(state)
                self._outcome = (ExitCode.STEADY_STATE_NOT_MET,
                                 "steady state not met before the method: " + unmet_because(state))
                return
        if ssh and self.hypothesis_strategy in DURING:
            self._tasks.append(asyncio.create_task(self._continuously(), name="ctk-during"))
        await self._method()
        for task in self._tasks:  # the continuous hypothesis ends with the method
            task.cancel()
        if ssh and self.hypothesis_strategy in AFTER and self.journal["status"] not in (
                "interrupted", "aborted"):
            state = await self._hypothesis("after")
            self.journal["steady_states"]["after"] = state
            if not state["steady_state_met"]:
                self.journal["deviated"] = True
                self.journal["status"] = journal_status(state)
                self._outcome = (ExitCode.DEVIATED, "steady state not met after the method: " +
                                 unmet_because(state))
                return
        if self._during_failed:
            self._outcome = (ExitCode.DEVIATED, "steady state not met during the method")

    async def _hypothesis(self, phase: str) -> dict[str, Any]:
        from chaoslib.hypothesis import run_steady_state_hypothesis

        self.bus.emit("phase.started", phase=phase)
        state: dict[str, Any] = await blocking.in_thread(
            run_steady_state_hypothesis, self.doc, self.controls.config, self.controls.secrets, dry=None,
            event_registry=None)
        passed = self._judge(phase, state)
        self.bus.emit("phase.finished", phase=phase, passed=passed)
        return state

    def _judge(self, phase: str, state: dict[str, Any]) -> bool:
        for verdict in probe_verdicts(state):
            self.bus.emit("check.evaluated", phase=phase, verdict=verdict)
        return bool(state["steady_state_met"])

    async def _continuously(self) -> None:
        from chaoslib.hypothesis import run_steady_state_hypothesis

        iteration = failed = 0
        while self.journal["status"] not in STOPPED:
            try:
                state = await blocking.in_thread(run_steady_state_hypothesis, self.doc,
                                                 self.controls.config, self.controls.secrets, dry=None,
                                                 event_registry=None)
            except blocking.Exited as exc:  # nobody awaits this task: stop the run from here
                self._exited(exc)
                self.lifecycle.stop(*self._outcome)
                return
            iteration += 1
            self.journal["steady_states"]["during"].append(state)
            if not self._judge("during", state):
                failed += 1
                self._during_failed = True
                if self.fail_fast:
                    self.journal["status"] = "failed"
                    break
            await asyncio.sleep(self.frequency)

    async def _method(self) -> None:
        from chaoslib.control import Control

        self._method_started = True
        self.bus.emit("phase.started", phase="during")
        runs: list[dict[str, Any]] = []
        self.journal["run"] = runs
        await blocking.in_thread(self.controls.begin, "method", Control())
        background = []
        try:
            for activity in self.doc.get("method") or []:
                if activity.get("background"):
                    task = asyncio.create_task(self._activity("method", activity, runs))
                    background.append(task)
                    self._tasks.append(task)
                    await asyncio.sleep(0)  # let it start now, in order, as chaoslib's pool does
                else:
                    await self._activity("method", activity, runs)
                if self.journal["status"] in STOPPED:
                    break
            await asyncio.gather(*background)
        finally:
            if not self.lifecycle.stopping:
                await blocking.in_thread(self.controls.end, "method", runs)
        self.bus.emit("phase.finished", phase="during", passed=not self._during_failed)

    async def _activity(self, phase: str, activity: dict[str, Any],
                        runs: list[dict[str, Any]]) -> dict[str, Any]:
        from chaoslib.activity import execute_activity

        name = activity.get("name") or activity.get("ref") or "?"
        kind = activity.get("type") or "action"
        self.bus.emit("activity.started", phase=phase, activity=name, type=kind,
                      background=bool(activity.get("background")))
        started = time.monotonic()
        try:
            run: dict[str, Any] = await blocking.in_thread(
                execute_activity, experiment=self.doc, activity=activity,
                configuration=self.controls.config, secrets=self.controls.secrets, dry=None, runs=runs)
        except asyncio.CancelledError:
            self.bus.emit("activity.finished", phase=phase, activity=name, type=kind,
                          status="interrupted", duration=round(time.monotonic() - started, 4),
                          error="stopped waiting for it (interrupted)")
            raise
        except blocking.Exited as exc:
            error = f"{exc} raised by the activity or a control around it: the run is interrupted"
            for unfinished in runs[::-1]:  # chaoslib appended it, and never finished it
                if isinstance(unfinished, dict) and "status" not in unfinished and \
                        (unfinished.get("activity") or {}).get("name") == name:
                    unfinished.update(status="failed", exception=[error + "\n"])
                    break
            self.bus.emit("activity.finished", phase=phase, activity=name, type=kind,
                          status="failed", duration=round(time.monotonic() - started, 4),
                          error=error)
            raise
        self.bus.emit("activity.finished", phase=phase, activity=name, type=kind,
                      status=run.get("status"), duration=run.get("duration"),
                      error=activity_error(run))
        return run

    # --- cleanup
    def _play_rollbacks(self) -> bool:
        if self.rollback_strategy == "never":
            return False
        if self.rollback_strategy == "always":
            return True
        if self.rollback_strategy == "deviated":
            return bool(self.journal.get("deviated"))
        return self._method_started  # ours: nothing ran, nothing to roll back (ctk#168)

    async def _cleanup(self, mark: int) -> None:
        """Must finish whatever happened; shielded by the lifecycle, so a second signal does
        not shorten it."""
        for task in self._tasks:
            task.cancel()
        killed = blocking.kill_all()
        if killed:
            log.info("killed %d process-provider session(s)", killed)
        early: asyncio.Task[Any] | None = None
        if self.lifecycle.stopping or self._interrupted or \
                self.journal.get("status") == "aborted":
            # a signal or an abort: what chaos.ctk.actions holds is reverted now, alongside the
            # rollbacks, not after them (they have no time limit); a rollback's revert() of
            # the same run waits for the same stop
            early = asyncio.create_task(blocking.in_thread(KEEPER.stop_all, mark))
        await self._hook(self.controls.end, "method", self.journal.get("run"))
        if self._play_rollbacks():
            await self._rollbacks()
        if early is not None:
            await early
        held = await blocking.in_thread(KEEPER.stop_all, mark)
        self._unfinished = {id(i) for h in held if not h.done.done() for i in h.injections
                            if i.outcome in ("pending", "injected")}
        await self._hook(self._end_controls)
        self._held = [i for h in held for i in h.injections]

    async def _rollbacks(self) -> None:
        from chaoslib.control import Control

        runs: list[dict[str, Any]] = []
        self.journal["rollbacks"] = runs
        await self._hook(self.controls.begin, "rollback", Control())
        background = []
        for activity in self.doc.get("rollbacks") or []:
            if activity.get("background"):
                background.append(asyncio.create_task(self._rollback(activity, runs)))
                await asyncio.sleep(0)
            else:
                await self._rollback(activity, runs)
        await asyncio.gather(*background)
        await self._hook(self.controls.end, "rollback", runs)

    async def _rollback(self, activity: dict[str, Any], runs: list[dict[str, Any]]) -> None:
        """One rollback; a SystemExit in it does not skip the others (chaoslib's would)."""
        try:
            await self._activity("rollback", activity, runs)
        except blocking.Exited as exc:
            self._exited(exc)

    def _end_controls(self) -> None:
        self.journal["end"] = datetime.now(UTC).isoformat()
        self.journal["duration"] = time.time() - self._started
        if self.journal.get("status") not in ("completed", "failed", "aborted", "interrupted"):
            self.journal["status"] = "completed"
        self.controls.end_experiment(self.journal)

    def _finish_journal(self) -> dict[str, Any]:
        """Chaos Toolkit's journal, as chaoslib finishes it; activities we stopped waiting for
        are recorded as failed (they never finished while the run lasted)."""
        journal = dict(self.journal)
        now = datetime.now(UTC)
        for key in ("run", "rollbacks"):
            journal[key] = [settled(dict(r), now) if isinstance(r, dict) else r
                            for r in list(journal.get(key) or [])]
        return journal


