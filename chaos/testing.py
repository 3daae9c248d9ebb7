"""The shipped test seam: run the real engine in-process, in milliseconds, with nothing touched.

Like httpx's `MockTransport`, these are the production interfaces with test behaviour behind
them, so a test drives the same engine `chaos run` uses - phases, timeline, write-ahead
ledger, revert order, guardrails, cancellation - and plugin authors test their own code the
same way:

    RecordingAdapter   an adapter that records every inject and revert (with the clock's time)
                       and fails on demand: inject raises, revert raises, target vanished
    MemoryLedger       the ledger protocol (chaos.safety.ledger_protocol.LedgerStore) in a
                       list: the same records as the file ledger, folded by the same rules
    ManualClock        monotonic + wall time that move only when told (`advance`), and a
                       `sleep` that resolves when they do; `run` jumps to the next sleeper
                       whenever the loop is otherwise idle

    clock = ManualClock()
    adapter = RecordingAdapter(clock)
    engine = Engine(experiment, adapters=registry_with(adapter), ledger=MemoryLedger(),
                    bus=EventBus(clock=clock), run_id="t", out_dir=tmp_path, clock=clock,
                    watchdog=None)
    result = clock.run(engine.run())   # (awaited) a 30 s experiment in a few milliseconds
    assert [c.action for c in adapter.calls] == ["inject", "revert"]

The same in one call, and a report rendered from its journal (what plugin authors use):

    run_in_process(text, adapters=[adapter])  -> InProcessRun: exit code, verdicts, injections,
                                                 the journal (typed and on disk)
    render_report("csv", run.journal_path, reporters=reporters)  -> the report's text
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import os
import tempfile
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from chaos.adapters.base import Adapter, RevertOutcome, Scope, TargetRef
from chaos.adapters.registry import AdapterRegistry
from chaos.clock import SYSTEM_CLOCK, Clock
from chaos.errors import FaultFailed, RevertFailed, StateDirUnusable
from chaos.faults import FaultRegistry
from chaos.faults import default_registry as default_faults
from chaos.model.experiment import FaultSpec
from chaos.model.redaction import NOTHING, Redactor
from chaos.safety.ledger_format import Entry, RunInfo, fold
from chaos.safety.ledger_protocol import RecordLedger

if TYPE_CHECKING:
    from chaos.model.experiment import Experiment
    from chaos.records import CheckVerdict, Injection, RunRecord
    from chaos.reports.registry import ReporterRegistry
    from chaos.slo.probe_kinds import ProbeKinds

__all__ = ["Call", "InProcessRun", "ManualClock", "MemoryLedger", "RecordingAdapter",
           "registry_with", "render_report", "run_in_process", "run_in_process_async"]

T = TypeVar("T")


class ManualClock:
    """A `chaos.clock.Clock` that moves only when told to."""

    def __init__(self, start: float = 1000.0, wall: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall - start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        await future

    def next_deadline(self) -> float | None:
        """When the earliest sleeper still waiting wakes, if any."""
        while self._sleepers and self._sleepers[0][2].done():  # cancelled sleeps
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    def advance(self, seconds: float) -> None:
        """Move time on; every sleep due by then resolves (in deadline order)."""
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def run(self, awaitable: Awaitable[T], *, idle_rounds: int = 20) -> T:
        """Await `awaitable`, jumping the clock to the next sleeper whenever every task is
        waiting on it (after `idle_rounds` passes of the event loop without it ending).
        Cancelling this cancels the awaitable and goes on driving it until it has ended."""
        task = asyncio.ensure_future(awaitable)
        cancelled: asyncio.CancelledError | None = None
        while not task.done():
            try:
                await self._step(task, idle_rounds)
            except asyncio.CancelledError as exc:
                task.cancel()
                cancelled = exc
        if cancelled is not None:
            raise cancelled
        return task.result()

    async def _step(self, task: asyncio.Future[Any], idle_rounds: int) -> None:
        for _ in range(idle_rounds):
            await asyncio.sleep(0)
            if task.done():
                return
        due = self.next_deadline()
        if due is None:
            await asyncio.sleep(0.001)  # waiting on something real (a thread, a pipe)
        else:
            self.advance(max(0.0, due - self._now))


@dataclass(frozen=True)
class Call:
    """One call a RecordingAdapter received."""

    action: Literal["inject", "revert"]
    fault: str  # the fault's name
    target: str  # the target's label: "<fault name>/<index>"
    at: float  # the clock's monotonic time when the call started
    outcome: str  # injected | reverted | gone | raised


Hook = Callable[[str, str], Awaitable[None] | None]


class RecordingAdapter(Adapter):
    """Serves `fault_types` for `target_kind` without touching anything; records each call.

    `fault_types=` / `target_kind=` / `name=` serve other faults (a plugin's: register its fault
    type in the registry given to `registry_with(..., faults=)`); by default process.kill and
    process.suspend on process targets. Each fault resolves to `targets.get(fault name, 1)`
    targets labelled `<fault>/<k>`. Labels in `inject_raises` / `revert_raises` fail there
    (FaultFailed / RevertFailed); labels in `vanished` revert as `gone`. `hook(action, label)`
    runs before each call and may await (an asyncio.Event: to cancel a run mid-inject) or
    raise."""

    name: ClassVar[str] = "testing.recording"
    target_kind: ClassVar[str] = "process"
    fault_types: ClassVar[tuple[str, ...]] = ("process.kill", "process.suspend")

    def __init__(self, clock: ManualClock | None = None, *, targets: Mapping[str, int] = {},
                 inject_raises: Collection[str] = (), revert_raises: Collection[str] = (),
                 vanished: Collection[str] = (), hook: Hook | None = None,
                 fault_types: Iterable[str] | None = None, target_kind: str | None = None,
                 name: str | None = None) -> None:
        # per instance, so two recorders (other faults, other target kinds) can share a
        # registry; the registry reads these attributes, class or instance alike
        given = {"fault_types": None if fault_types is None else tuple(fault_types),
                 "target_kind": target_kind, "name": name}
        vars(self).update({k: v for k, v in given.items() if v is not None})
        self.clock = clock or ManualClock()
        self.targets = dict(targets)
        self.inject_raises, self.revert_raises = set(inject_raises), set(revert_raises)
        self.vanished = set(vanished)
        self.hook = hook
        self.calls: list[Call] = []
        self.held: set[str] = set()  # labels injected and not reverted: what a test must see empty

    def of(self, action: str) -> list[str]:
        """The target labels of one kind of call, in call order."""
        return [c.target for c in self.calls if c.action == action]

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        return [TargetRef(self.target_kind, f"{fault.name}/{k}", {"label": f"{fault.name}/{k}"},
                          f"testing:{fault.name}/{k}") for k in range(self.targets.get(
                              fault.name, 1))]

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        return {"adapter": self.name, "fault": fault.name, "target": target.label}

    async def _call(self, action: Literal["inject", "revert"], fault: str, label: str,
                    fails: set[str], error: type[Exception]) -> Call:
        at = self.clock.monotonic()
        try:
            if self.hook is not None:
                pending = self.hook(action, label)
                if pending is not None:
                    await pending
            if label in fails:
                raise error(f"{label}: {action} failed (as the test asked)")
        except BaseException:
            self.calls.append(Call(action, fault, label, at, "raised"))
            raise
        outcome = "injected" if action == "inject" else (
            "gone" if label in self.vanished else "reverted")
        call = Call(action, fault, label, at, outcome)
        self.calls.append(call)
        return call

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        await self._call("inject", fault.name, target.label, self.inject_raises, FaultFailed)
        self.held.add(target.label)
        return spec

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        label = str(spec["target"])
        call = await self._call("revert", str(spec["fault"]), label, self.revert_raises,
                                RevertFailed)
        self.held.discard(label)
        return "gone" if call.outcome == "gone" else "reverted"


def registry_with(*adapters: Adapter, faults: FaultRegistry | None = None) -> AdapterRegistry:
    """A fresh adapter registry holding only these adapters, over `faults` (default: the
    built-in catalogue; pass a registry a plugin registered its fault types in)."""
    registry = AdapterRegistry(faults or default_faults())
    for adapter in adapters:
        registry.add(adapter)
    return registry


@dataclass(frozen=True)
class InProcessRun:
    """What an in-process run left, as `chaos run` would have: its exit code and verdict, and
    its journal, typed (`record`: chaos.records.RunRecord) and written at `journal_path`."""

    exit_code: int
    verdict: str  # held | deviated | steady-state-not-met | aborted | revert-failed | error ...
    reason: str
    record: RunRecord
    journal_path: Path

    @property
    def verdicts(self) -> dict[str, dict[str, str]]:
        """Phase -> check -> status (PASS, FAIL, NO_DATA, INVALID, ERROR)."""
        return {phase: {str(c.check): str(c.status) for c in self.checks(phase)}
                for phase in self.record.phases}

    def checks(self, phase: str) -> tuple[CheckVerdict, ...]:
        """A phase's check verdicts, with the measured value, threshold, window and events."""
        return self.record.phase(phase).checks

    @property
    def injections(self) -> tuple[Injection, ...]:
        return self.record.injections

    def events(self, name: str = "") -> list[dict[str, Any]]:
        """The journal's events (those called `name`, if given), as plain data."""
        return [e.to_json() for e in self.record.events if not name or e.name == name]


async def run_in_process_async(
    experiment: str | os.PathLike[str] | Experiment, *, adapters: Iterable[Adapter] |
    AdapterRegistry = (), faults: FaultRegistry | None = None,
    probes: ProbeKinds | None = None, clock: ManualClock | None = None,
    ledger: MemoryLedger | None = None, variables: Mapping[str, str] | None = None,
    out_dir: Path | None = None, seed: int = 1,
) -> InProcessRun:
    """`run_in_process`, awaited (inside a test that already runs an event loop)."""
    from chaos.records import RunRecord
    from chaos.runner import journal
    from chaos.runner.engine import Engine
    from chaos.runner.events import EventBus

    if not isinstance(adapters, AdapterRegistry):
        adapters = list(adapters)
        # the recorders' clock is the run's: their call times read on it
        clock = clock or next((a.clock for a in adapters if isinstance(a, RecordingAdapter)),
                              None)
        adapters = registry_with(*adapters, faults=faults)
    clock = clock or ManualClock()
    loaded = _load(experiment, adapters.faults, probes, variables or {})
    out = out_dir or Path(tempfile.mkdtemp(prefix="chaos-in-process-"))
    if ledger is None:  # its target locks beside the journal, not in a directory to clean up
        (out / "state").mkdir(parents=True, exist_ok=True)
        ledger = MemoryLedger(out / "state", clock=clock)
    bus = EventBus(clock=clock)
    recorder = journal.Recorder()
    bus.subscribe(recorder)
    engine = Engine(loaded, adapters=adapters, ledger=ledger,
                    bus=bus, run_id="in-process", out_dir=out, clock=clock, seed=seed,
                    watchdog=None, probes=probes)
    started = clock.time()
    result = await clock.run(engine.run())
    document = journal.build(loaded, recorder, result, started, clock.time())
    path = out / "journal.json"
    journal.write(path, document)
    return InProcessRun(int(result.exit_code), result.verdict, result.reason,
                        RunRecord.of(document), path)


def run_in_process(experiment: str | os.PathLike[str] | Experiment, **options: Any
                   ) -> InProcessRun:
    """Run an experiment (YAML text, a file, or a loaded Experiment) through the real engine,
    in this process, on a manual clock (a 5-minute experiment in milliseconds; `clock=`, else
    the first RecordingAdapter's), with the given adapters (RecordingAdapters, or a plugin's
    own), an in-memory ledger and no watchdog process. Options: adapters=, faults= (a registry with a plugin's fault types),
    probes= (probe kinds), clock=, ledger=, variables=, out_dir= (default: a temporary
    directory), seed=. Only for adapters that leave nothing behind if the test dies."""
    return asyncio.run(run_in_process_async(experiment, **options))


def _load(experiment: str | os.PathLike[str] | Experiment, faults: FaultRegistry,
          probes: ProbeKinds | None, variables: Mapping[str, str]) -> Experiment:
    from chaos.model.experiment import Experiment
    from chaos.model.loader import load_file, load_text
    from chaos.model.source import SourceText
    from chaos.runner.load import vocabulary

    if isinstance(experiment, Experiment):
        return experiment
    vocab = vocabulary(faults, probes)
    if isinstance(experiment, str) and "\n" in experiment:
        return load_text(SourceText("<experiment>", experiment), vocab, variables)
    return load_file(experiment, vocab, variables)


def render_report(fmt: str, *journals: str | os.PathLike[str],
                  reporters: ReporterRegistry | None = None) -> str | bytes:
    """One report (as `chaos report JOURNAL... --format FMT` writes it) of these journals, by a
    reporter from `reporters` (a fresh registry a plugin registered its format in)."""
    from chaos.reports import collection
    from chaos.reports.registry import Placement, default_registry

    registry = reporters or default_registry()
    reporter = registry.get(fmt)
    if reporter is None:
        raise ValueError(f"no report format {fmt!r}; registered: {', '.join(registry.names())}")
    paths = [Path(j) for j in journals]
    rendered = reporter.render(collection.load(tuple(paths)),
                               Placement(paths[0].resolve().parent if paths else Path.cwd()))
    if not isinstance(rendered, str | bytes):
        raise ValueError(f"--format {fmt} writes several files; render them with chaos report")
    return rendered


class _AlwaysFree:
    """The revert lock of a ledger no other process can see."""

    def try_acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


class MemoryLedger(RecordLedger):
    """The ledger protocol in memory: records are checked to be plain JSON, folded like the
    file ledger's. `refuse` names events whose writes fail as on a full disk (StateDirUnusable);
    `written_elsewhere` appends as another process (`chaos stop`, the watchdog) would.

    `state_dir` holds what is not the ledger (target locks); a temporary one by default."""

    def __init__(self, state_dir: Path | None = None, *, clock: Clock = SYSTEM_CLOCK,
                 refuse: Collection[str] = (), redactor: Redactor = NOTHING) -> None:
        super().__init__(redactor=redactor, clock=clock)
        self._tmp = None if state_dir else tempfile.TemporaryDirectory(prefix="chaos-ledger-")
        self.state_dir = state_dir or Path(self._tmp.name if self._tmp else ".")
        self.refuse = set(refuse)
        self.records: dict[str, list[dict[str, Any]]] = {}
        self._own: dict[str, int] = {}

    def _store(self, run: str, event: str, record: dict[str, Any]) -> None:
        if event in self.refuse:
            raise StateDirUnusable(f"cannot write the {event} record (refused by the test)",
                                   directory=str(self.state_dir), errno_name="ENOSPC")
        self.records.setdefault(run, []).append(json.loads(json.dumps(record)))
        self._own[run] = len(self.records[run])

    def written_elsewhere(self, run: str, event: str, **fields: Any) -> None:
        """Append as another process would: this ledger then reads the run back."""
        self.append(run, event, **fields)
        self._own[run] = -1

    def events(self, run: str) -> list[str]:
        return [r["event"] for r in self.records.get(run, [])]

    def start_run(self, run: str, *, pid: int, pid_create_time: float, title: str) -> None:
        self.append(run, "run", pid=pid, pid_create_time=pid_create_time, title=title)

    def written_by_others(self, run: str) -> bool:
        return self._own.get(run) != len(self.records.get(run, []))

    def revision(self, run: str) -> object:
        return len(self.records.get(run, [])), self._own.get(run)

    def revert_lock(self, run: str) -> _AlwaysFree:
        return _AlwaysFree()

    def entries(self, run: str) -> list[Entry]:
        return fold(self.records.get(run, []))

    def open_entries(self, run: str | None = None) -> list[Entry]:
        runs = [run] if run else list(self.records)
        return [e for r in runs for e in self.entries(r) if e.is_open]

    def heads(self, lines: int = 8) -> Iterator[RunInfo]:
        for run, records in self.records.items():
            head = next((r for r in records if r["event"] == "run"), {})
            yield RunInfo(run=run, pid=head.get("pid", 0),
                          pid_create_time=head.get("pid_create_time", 0.0),
                          title=head.get("title", ""), started=head.get("ts", 0.0),
                          finished=any(r["event"] == "finished" for r in records))
