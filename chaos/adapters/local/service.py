"""Services declared in the experiment: the runner started them, so it knows their pids.

Kill and suspend reuse the process adapter's mechanics (and its revert specs, so the watchdog
needs nothing from the runner); restart asks the runner to stop and start the service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import psutil

from chaos.adapters.base import RevertOutcome, Scope, TargetRef
from chaos.adapters.local import process
from chaos.adapters.local.process import ProcessAdapter, ProcessRecipe, ProcessSpec, target_ref
from chaos.errors import TargetNotFound
from chaos.model.experiment import FaultSpec

NAME = "local.service"


async def _restart(fault: FaultSpec, target: TargetRef, spec: ProcessSpec, scope: Scope) -> None:
    await scope.restart_service(str(target.identity["service"]), fault.params.get("signal"))


RECIPES: Mapping[str, ProcessRecipe] = {
    **process.RECIPES,
    "service.restart": ProcessRecipe(lambda fault, target: ProcessSpec(NAME), _restart),
}


class ServiceAdapter(ProcessAdapter):
    name = NAME
    target_kind = "service"
    fault_types = tuple(RECIPES)
    recipes: ClassVar[Mapping[str, ProcessRecipe]] = RECIPES

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        service = str(fault.target.selector["name"])
        pid = scope.service_pid(service)
        if pid is None:
            raise TargetNotFound(f"{fault.name}: service {service!r} is not running")
        try:
            ref = target_ref(psutil.Process(pid), "service", {"service": service})
        except psutil.NoSuchProcess:
            raise TargetNotFound(f"{fault.name}: service {service!r} exited") from None
        return [TargetRef(kind="service", label=f"service {service} (pid {pid})",
                          identity=ref.identity, lock_key=ref.lock_key, pids=ref.pids)]

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        ProcessSpec.from_json(spec)  # a version this chaos cannot read is refused all the same
        return "nothing"  # restarts are instant; kill/suspend specs name the process adapter
