"""One experiment run from start to journal: the engine, the recorder, the files it leaves.

The CLI, game days and tests all run experiments through `run_experiment`, so a run looks the
same wherever it starts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.adapters.registry import AdapterRegistry, default_registry
from chaos.model.experiment import Experiment
from chaos.model.redaction import Redactor
from chaos.runner import journal
from chaos.runner.engine import Engine, RunResult, new_run_id
from chaos.runner.events import EventBus, Subscriber
from chaos.runner.lifecycle import Lifecycle
from chaos.safety.ledger import Ledger
from chaos.slo.probe_kinds import ProbeKinds


@dataclass(frozen=True)
class RunOptions:
    runs_dir: Path = Path("chaos-runs")  # each run gets RUNS_DIR/RUN_ID/ (journal, service logs)
    journal_path: Path | None = None  # overrides RUNS_DIR/RUN_ID/journal.json
    state_dir: Path | None = None  # ledger, locks, watchdog logs
    seed: int | None = None
    heartbeat_timeout: float | None = None
    run_id: str | None = None  # chosen by the caller (a detached holder's log bears it)


@dataclass(frozen=True)
class RunRecord:
    result: RunResult
    journal: dict[str, Any]
    journal_path: Path
    out_dir: Path
    journal_error: str = ""  # the journal could not be written there: the CLI prints it instead


async def run_experiment(experiment: Experiment, options: RunOptions,
                         subscribers: Iterable[Subscriber] = (),
                         adapters: AdapterRegistry | None = None,
                         lifecycle: Lifecycle | None = None,
                         probes: ProbeKinds | None = None) -> RunRecord:
    """One run. A caller that handles signals passes the `Lifecycle` it routes them to.
    `adapters` and `probes` default to the process-wide registries; a test passes fresh ones
    (with the fault registry it loaded the experiment with) and touches no global."""
    redactor = Redactor.of(experiment.variables)
    bus = EventBus(redactor)
    recorder = journal.Recorder()
    bus.subscribe(recorder)
    for subscriber in subscribers:
        bus.subscribe(subscriber)
    ledger = Ledger(options.state_dir, redactor=redactor)
    run_id = options.run_id or new_run_id()
    out_dir = options.runs_dir / run_id
    engine = Engine(experiment, adapters=adapters or default_registry(), ledger=ledger, bus=bus,
                    run_id=run_id, out_dir=out_dir, lifecycle=lifecycle, seed=options.seed,
                    heartbeat_timeout=options.heartbeat_timeout, probes=probes)
    started = time.time()
    result = await engine.run()
    document = journal.build(experiment, recorder, result, started, time.time())
    path = options.journal_path or out_dir / "journal.json"
    try:
        journal.write(path, document)
    except OSError as exc:  # a full disk must not lose what happened: stderr is the last resort
        return RunRecord(result, document, path, out_dir, f"cannot write {path}: {exc}")
    return RunRecord(result, document, path, out_dir)
