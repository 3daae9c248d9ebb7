"""Holds the faults that Chaos Toolkit activities inject through chaos.ctk.actions.

A python activity is a plain function call, in whichever process runs the experiment: ours
(`chaos run`) or Chaos Toolkit's own. Each injection is run by our engine, unchanged, on an event
loop in a daemon thread of that process, so it gets everything a native run gets: plan and
guards, per-target locks, the write-ahead ledger, a watchdog process with heartbeats (it reverts
when the process dies, SIGKILL included), and the revert at the end of `duration`. The activity
returns once the fault is injected; `stop` (the rollback action) ends it earlier, and `stop_all`
runs when the experiment ends and at interpreter exit, so no fault outlives its experiment.

Signals belong to the main thread's runner: engines install no signal handlers themselves
(their callers do, chaos.runner.lifecycle), so the keeper's engines simply get none.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos.errors import ChaosError, ExitCode, FaultFailed
from chaos.model.experiment import Experiment
from chaos.runner.engine import Engine, Injection, new_run_id
from chaos.runner.events import Event, EventBus

if TYPE_CHECKING:
    from chaos.adapters.registry import AdapterRegistry
    from chaos.faults import FaultRegistry
    from chaos.slo.probe_kinds import ProbeKinds

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0  # plan, watchdog start-up and the injection itself
STOP_TIMEOUT = 60.0


@dataclass
class Held:
    """One engine run started by an activity."""

    engine: Engine
    done: concurrent.futures.Future[Any]
    events: list[Event] = field(default_factory=list)

    @property
    def run(self) -> str:
        return self.engine.run_id

    @property
    def injections(self) -> list[Injection]:
        return self.engine.injections

    def describe(self) -> dict[str, Any]:
        return {"run": self.run, "injections": [
            {"id": i.id, "fault": i.fault.type, "target": i.target.label, "outcome": i.outcome,
             **({"error": i.error} if i.error else {})} for i in self.injections]}


class Keeper:
    """The engines that activities started. `adapters` and `probes` are the registries their
    faults are loaded and run with (None: the process-wide ones); chaoslib calls activities with
    the file's arguments only, so a run that was given registries lends them to the keeper
    while it lasts (`using`)."""

    def __init__(self, adapters: AdapterRegistry | None = None,
                 probes: ProbeKinds | None = None) -> None:
        self.adapters, self.probes = adapters, probes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self.held: list[Held] = []
        self.listeners: list[Callable[[Event], None]] = []

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="chaos-ctk-keeper",
                                 daemon=True).start()
                atexit.register(self.stop_all)
                self._loop = loop
            return self._loop

    @contextlib.contextmanager
    def using(self, adapters: AdapterRegistry | None,
              probes: ProbeKinds | None) -> Iterator[None]:
        """These registries (where not None) for the activities of one run, then the keeper's
        own again."""
        before = self.adapters, self.probes
        self.adapters, self.probes = adapters or self.adapters, probes or self.probes
        try:
            yield
        finally:
            self.adapters, self.probes = before

    @property
    def faults(self) -> FaultRegistry | None:
        """The fault types activities may inject (None: the process-wide catalogue)."""
        return self.adapters.faults if self.adapters is not None else None

    def hold(self, experiment: Experiment, state_dir: Path | None = None) -> Held:
        """Run the experiment's faults; return once they are injected (or raise why not)."""
        loop = self._running_loop()
        started: concurrent.futures.Future[Held] = concurrent.futures.Future()
        mine: list[Held] = []
        asyncio.run_coroutine_threadsafe(self._run(experiment, state_dir, started, mine), loop)
        try:
            held = started.result(START_TIMEOUT)
        except concurrent.futures.TimeoutError:
            # never leave it to inject later, behind an activity that said it failed
            for late in mine:
                self.stop(late, f"not injected within {START_TIMEOUT:g}s")
            raise FaultFailed(f"{experiment.title}: the fault was not injected within "
                              f"{START_TIMEOUT:g}s; it was stopped and whatever it had "
                              "injected was reverted",
                              hint="look at `chaos status`; a slow target (an image pull, a "
                                   "drain) may need a fault that starts at once") from None
        if held.done.done():  # finished already: an instant fault, or it failed
            result = held.done.result()
            if result.exit_code not in (ExitCode.OK,):
                error = result.error or ChaosError(result.reason)
                raise error
        return held

    async def _run(self, experiment: Experiment, state_dir: Path | None,
                   started: concurrent.futures.Future[Held], mine: list[Held]) -> None:
        from chaos.adapters.registry import default_registry
        from chaos.safety.ledger import Ledger

        from chaos.model.redaction import Redactor

        redactor = Redactor.of(experiment.variables)  # the one masking rule, as in chaos run
        bus = EventBus(redactor)
        ledger = Ledger(state_dir, redactor=redactor)
        run_id = new_run_id()
        engine = Engine(experiment, adapters=self.adapters or default_registry(), ledger=ledger,
                        bus=bus, run_id=run_id, out_dir=ledger.state_dir / "adhoc" / run_id,
                        probes=self.probes)
        held = Held(engine, concurrent.futures.Future())
        expected: list[int] = []

        def on_event(event: Event) -> None:
            held.events.append(event)
            for listener in list(self.listeners):
                listener(event)
            if event.name == "fault.planned":
                expected.append(len(event.data["targets"]))
            injected = sum(e.name == "fault.injected" for e in held.events)
            if expected and injected >= sum(expected) and not started.done():
                started.set_result(held)

        bus.subscribe(on_event)
        with self._lock:
            self.held.append(held)
            mine.append(held)
        try:
            result = await engine.run()
        except BaseException as exc:
            held.done.set_exception(exc)
            if not started.done():
                started.set_exception(exc)
            raise
        held.done.set_result(result)
        if not started.done():
            started.set_result(held)

    def stop(self, held: Held, reason: str = "reverted by a rollback") -> None:
        """Revert now (the engine's own cleanup) and wait until it is done."""
        if held.done.done():
            return
        loop = self._running_loop()
        loop.call_soon_threadsafe(held.engine.stop, ExitCode.OK, reason)
        try:
            held.done.result(STOP_TIMEOUT)
        except concurrent.futures.TimeoutError:
            log.error("run %s did not finish reverting within %ss; its watchdog will",
                      held.run, STOP_TIMEOUT)

    def stop_all(self, since: int = 0) -> list[Held]:
        """Stop every run still holding a fault (those started after index `since`)."""
        with self._lock:
            runs = self.held[since:]
        for held in runs:
            self.stop(held, "the experiment ended")
        return runs

    def find(self, run: str) -> Held | None:
        with self._lock:
            return next((h for h in self.held if h.run == run), None)


KEEPER = Keeper()
