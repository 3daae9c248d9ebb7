"""Dry runs: resolve what each fault would hit and check the guards, inject nothing."""

from __future__ import annotations

from dataclasses import dataclass

from chaos.adapters.registry import AdapterRegistry
from chaos.errors import ChaosError, TargetNotFound
from chaos.model.experiment import Experiment
from chaos.safety import guards


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

    @property
    def problem(self) -> str:
        return str(self.error) if self.error else ""


async def plan(experiment: Experiment, adapters: AdapterRegistry,
               seed: int = 0) -> list[PlannedFault]:
    """What each fault would hit now, and why not where a guard or selector refuses.

    Runs before anything starts (so a bad plan injects nothing) and for --dry-run. Faults are
    resolved again when they start: processes come and go.
    """
    protected = guards.protected_pids()
    planned = []
    for fault in experiment.faults:
        adapter = adapters.route(fault.type, fault.target.kind)
        targets: tuple[str, ...] = ()
        error: ChaosError | None = None
        if fault.target.kind == "service":
            targets = (f"service {fault.target.selector['name']} (started by the run)",)
        else:
            try:
                refs = await adapter.resolve(fault, _NoServices(seed))
                guards.check_targets(fault, refs, experiment.limits, protected)
                targets = tuple(r.label for r in refs)
            except TargetNotFound as exc:
                if not (adapter.created_by_services and experiment.services):
                    error = exc
                targets = ("(none yet: resolved when the fault starts, after the services)",)
            except ChaosError as exc:
                error = exc
        planned.append(PlannedFault(fault.name, fault.type, adapter.name, fault.start,
                                    fault.duration, targets, error))
    return planned
