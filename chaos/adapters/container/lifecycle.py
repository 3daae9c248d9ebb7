"""container.pause / stop / restart / kill through the engine API: one recipe per fault type.

Each recipe says what the injection calls and what its revert calls (unpause, start, or
nothing for the instant restart and kill). The revert spec names the engine, the container's
id, the start time and main process of the run that was hit: a container restarted or
replaced since then is "gone" (the fault went with it), one that no longer exists too, and a
container someone already unpaused or started is "nothing" — never an error, never a second
action on a new run.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

from chaos.adapters.base import Adapter, RevertOutcome, RevertSpec, Scope, TargetRef
from chaos.adapters.container import engine_api, selection
from chaos.adapters.local.process import send
from chaos.errors import GuardRefused, PermissionDenied, RevertFailed, TargetNotFound
from chaos.model.experiment import FaultSpec

NAME = "container.engine"


@dataclass(frozen=True)
class Recipe:
    inject: Callable[[Any, Mapping[str, Any], Mapping[str, Any]], object]  # (api, ident, params)
    revert: Literal["unpause", "start"] | None  # what the revert does; None: instant
    # refuse a container paused already: its unpause would end someone else's pause
    refuse_paused: bool = False


@dataclass(frozen=True)
class LifecycleSpec(RevertSpec):
    """The engine, the container's run that was hit, and what undoes the fault."""

    fault: str
    revert: Literal["unpause", "start"] | None
    docker_host: str
    container: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {**self.header(), "fault": self.fault, "revert": self.revert,
                "docker_host": self.docker_host, "container": dict(self.container)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        cls.check_version(data)
        revert = data.get("revert")
        if revert not in ("unpause", "start", None):
            raise RevertFailed(f"{data['adapter']}: unknown revert action {revert!r}")
        return cls(str(data["adapter"]), str(data.get("fault")), revert,
                   str(data["docker_host"]), dict(data["container"]))


def kill(api: Any, ident: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """Signal the main process from the host, as if it had crashed: the restart policy then
    decides (the engine's own kill marks the container as stopped by hand, and Docker ignores
    the policy). Without the right to signal it, the engine's kill."""
    name = str(params.get("signal") or "TERM")
    try:
        if send(int(ident["pid"]), float(ident["create_time"]), signal.Signals[f"SIG{name}"]):
            return
    except PermissionDenied:
        pass
    api.kill(ident["id"], signal=f"SIG{name}")


def _grace(params: Mapping[str, Any]) -> int:
    return int(params.get("grace_period", 10))


RECIPES = {
    "container.pause": Recipe(lambda api, ident, p: api.pause(ident["id"]), "unpause",
                              refuse_paused=True),
    "container.stop": Recipe(lambda api, ident, p: api.stop(ident["id"], timeout=_grace(p)),
                             "start"),
    "container.restart": Recipe(
        lambda api, ident, p: api.restart(ident["id"], timeout=_grace(p)), None),
    "container.kill": Recipe(kill, None),
}


class ContainerLifecycleAdapter(Adapter):
    created_by_services = True  # `docker run` services start containers
    name = NAME
    target_kind = "container"
    fault_types: ClassVar[tuple[str, ...]] = tuple(RECIPES)

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        host, infos = await selection.resolve_containers(fault, scope)
        if RECIPES[fault.type].refuse_paused:
            paused = [selection.container_name(i) for i in infos
                      if (i.get("State") or {}).get("Paused")]
            if paused:
                raise GuardRefused(f"{fault.name}: container {', '.join(paused)} is paused "
                                   "already (by someone else, or another fault)",
                                   hint="unpause it first (`docker unpause NAME`), or wait "
                                        "for the other fault to end")
        return [selection.container_ref(info, host, fault) for info in infos]

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        ident = target.identity
        return LifecycleSpec(
            NAME, fault.type, RECIPES[fault.type].revert, ident["docker_host"],
            {k: ident[k] for k in ("id", "name", "started_at", "pid", "create_time")}).to_json()

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        typed = LifecycleSpec.from_json(spec)
        host, ident = typed.docker_host, typed.container
        info = await engine_api.inspect(host, ident["id"])
        if not selection.same_run(info, ident):
            raise TargetNotFound(f"{fault.name}: container {ident['name']} stopped or "
                                 "restarted before the fault reached it")
        recipe = RECIPES[fault.type]
        try:
            await engine_api.call(host, f"{fault.type} on {ident['name']}",
                                  lambda api: recipe.inject(api, ident, fault.params))
        except engine_api.Missing:
            raise TargetNotFound(f"{fault.name}: container {ident['name']} was removed "
                                 "before the fault reached it") from None
        return typed.to_json()

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        typed = LifecycleSpec.from_json(spec)
        action = typed.revert
        if action is None:
            return "nothing"
        host, ident = typed.docker_host, typed.container
        info = await engine_api.inspect(host, ident["id"])
        if info is None:
            return "gone"
        state = info.get("State") or {}
        if action == "unpause":
            if not selection.same_run(info, ident):
                return "gone"  # restarted: the new run was never paused by us
            if not state.get("Paused"):
                return "nothing"
            call = "unpause"
        else:  # start again: only the run we stopped, and only while it is still stopped
            if state.get("Running"):
                return "nothing" if state.get("StartedAt") == ident["started_at"] else "gone"
            if state.get("StartedAt") != ident["started_at"]:
                return "gone"  # someone else started and stopped it since
            call = "start"
        try:
            await engine_api.call(host, f"{call} {ident['name']}",
                                  lambda api: getattr(api, call)(ident["id"]))
        except engine_api.Missing:
            return "gone"
        return "reverted"
