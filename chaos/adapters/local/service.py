"""Services declared in the experiment: the runner started them, so it knows their pids.

Kill and suspend reuse the process adapter's mechanics (and its revert specs, so the watchdog
needs nothing from the runner); restart asks the runner to stop and start the service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psutil

from chaos.adapters.base import Adapter, RevertOutcome, Scope, TargetRef
from chaos.adapters.local.process import inject_signal, prepare_signal, target_ref
from chaos.errors import TargetNotFound
from chaos.model.experiment import FaultSpec

NAME = "local.service"


class ServiceAdapter(Adapter):
    name = NAME
    target_kind = "service"
    fault_types = ("process.kill", "process.suspend", "service.restart")

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

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        if fault.type == "service.restart":
            return {"adapter": NAME, "action": "none"}
        return prepare_signal(fault, target)

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        if fault.type == "service.restart":
            await scope.restart_service(str(target.identity["service"]),
                                        fault.params.get("signal"))
        else:
            await inject_signal(fault, target, spec)
        return spec

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        return "nothing"  # restarts are instant; kill/suspend specs name the process adapter
