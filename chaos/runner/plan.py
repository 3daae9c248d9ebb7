"""Dry runs: resolve what each fault would hit and check the guards, inject nothing."""

from __future__ import annotations

from dataclasses import dataclass

from chaos.adapters.registry import AdapterRegistry
from chaos.errors import ChaosError, TargetNotFound
from chaos.model.experiment import Experiment
from chaos.safety import guards
from chaos.safety.ledger import Ledger
from chaos.safety.ledger_protocol import LedgerStore


class _NoServices:
    """Before the run starts no services: a service target resolves to a placeholder."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.run_id = "dry-run"

    def service_pid(self, name: str) -> int | None:
        return None

    async def restart_service(self, name: str, signal_name: str | None) -> None:
        raise AssertionError("dry runs restart nothing")


@dataclass(frozen=True)
class PlannedFault:
    name: str
    type: str
    adapter: str
    start: float
    duration: float
    targets: tuple[str, ...]
    error: ChaosError | None = None
    later: str = ""  # why the targets can only be known once the run's services run

    @property
    def problem(self) -> str:
        return str(self.error) if self.error else ""


async def plan(experiment: Experiment, adapters: AdapterRegistry,
               seed: int = 0, ledger: LedgerStore | None = None) -> list[PlannedFault]:
    """What each fault would hit now, and why not where a guard or selector refuses.

    Runs before anything starts (so a bad plan injects nothing) and for --dry-run. Faults are
    resolved again when they start: processes come and go, and the processes that declared
    services start (a supervisor's workers) exist only then. So with services declared, a
    process selector that matches nothing yet is not an error here, and one scoped to a
    service (`process: {service: web, ...}`) is not resolved at all.
    """
    protected = {**guards.other_runs(ledger or Ledger()), **guards.protected_pids()}
    planned = []
    for fault in experiment.faults:
        adapter = adapters.route(fault.type, fault.target.kind)
        targets: tuple[str, ...] = ()
        error: ChaosError | None = None
        later = ""
        selector = fault.target.selector
        if fault.target.kind == "service":
            targets = (f"service {selector['name']} (started by the run)",)
        elif fault.target.kind == "process" and selector.get("service") is not None:
            later = (f"resolved when the fault starts, once service {selector['service']} runs: "
                     f"its processes matching {fault.target.describe()}")
        else:
            try:
                refs = await adapter.resolve(fault, _NoServices(seed))
                guards.check_targets(fault, refs, experiment.limits, protected)
                targets = tuple(r.label for r in refs)
                if fault.target.kind == "process" and experiment.services:
                    later = ("matches these now; resolved again when the fault starts, when it "
                             "may also match the services' processes (`service: NAME` in the "
                             "selector keeps it to one service's)")
            except TargetNotFound as exc:
                # what the declared services start (a supervisor's workers, `docker run`
                # containers) exists only once they run: resolved when the fault starts
                if experiment.services and (fault.target.kind == "process"
                                            or adapter.created_by_services):
                    later = (f"matches nothing before the services start; resolved when the "
                             f"fault starts ({exc})")
                else:
                    error = exc
            except ChaosError as exc:
                error = exc
        planned.append(PlannedFault(fault.name, fault.type, adapter.name, fault.start,
                                    fault.duration, targets, error, later))
    return planned
