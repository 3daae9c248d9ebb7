"""resource.cpu / memory / io / threads inside a container's cgroups, by the local burner.

The workers are the local resource adapter's (chaos.adapters.local.burner: each ends itself at
its deadline and with its parent), started on the host and joined to every cgroup of the
container's main process before they load anything — so the container's own limits (CPU quota,
memory.max, pids.max) bound them and the container feels the load. The revert spec is the
local adapter's (workers by pid + create time and a tag): `local.resource` kills them from any
process, with or without the engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from chaos.adapters.base import Scope, TargetRef
from chaos.adapters.container import selection
from chaos.adapters.local.resource import ProcessResourceAdapter
from chaos.adapters.local.resource_recipes import (
    OOM_MARGIN,
    _fmt,
    _refuse,
    label_of,
    plan_of,
    recipe,
)
from chaos.errors import GuardRefused
from chaos.model.experiment import FaultSpec


def within_limit(fault: FaultSpec, info: Mapping[str, Any], size: int) -> None:
    """Memory past the container's own limit would wake its OOM killer, which may pick the
    container's processes rather than the worker: refuse unless `force`."""
    limit = int((info.get("HostConfig") or {}).get("Memory") or 0)
    if limit and size > (1 - OOM_MARGIN) * limit and not fault.params.get("force"):
        raise _refuse(fault, "amount", f"{_fmt(size)} is more than container "
                      f"{selection.container_name(info)}'s memory limit allows "
                      f"({_fmt(limit)}): its OOM killer could kill the container's own "
                      "processes", "ask for less (the workers share the limit), or set "
                      "force: true if that is the point")


class ContainerResourceAdapter(ProcessResourceAdapter):
    created_by_services = True  # `docker run` services start containers
    name = "container.resource"
    target_kind = "container"
    # fault_types: the process adapter's (cpu, memory, io, threads)

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        plan = plan_of(fault)
        host, infos = await selection.resolve_containers(fault, scope)
        refs = []
        for info in infos:
            if (info.get("State") or {}).get("Paused"):
                raise GuardRefused(f"{fault.name}: container {selection.container_name(info)} "
                                   "is paused: workers joining its cgroups would be frozen too",
                                   hint="unpause it first (`docker unpause NAME`), or run the "
                                        "resource fault before or after the pause")
            memory = recipe(fault).memory
            if memory is not None:
                within_limit(fault, info, memory(plan))
            ref = selection.visible(selection.container_ref(info, host, fault), fault)
            refs.append(dataclasses.replace(
                ref, label=f"{ref.label}'s cgroup: {label_of(fault, plan)}",
                identity={**ref.identity, "plan": plan}))
        return refs
