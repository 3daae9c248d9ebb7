"""network.* faults inside a container's network namespace, by the local kernel recipes.

Nothing is rewritten for containers: each container becomes a `netns` target whose namespace
is a path, /proc/PID/ns/net of the container's main process, and the kernel adapter (tc
tbf/netem under the `ca05:` handle with the qdisc snapshot, nftables table `chaos_<id>`)
injects and reverts there through nsenter — never in the host's namespace. A container in the
host's network (`network_mode: host`) is refused: its "namespace" is the host's.

The revert spec is the kernel adapter's plus the container's main process (pid + create time):
a revert first checks from /proc that this process still lives. A container stopped, restarted
or removed took its namespace, and the fault, with it: "gone", and the new run is not touched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from chaos.adapters.base import Adapter, RevertOutcome, RevertSpec, Scope, TargetRef
from chaos.adapters.container import selection
from chaos.adapters.local.kernel import KernelSpec, NetnsAdapter, revert_kernel
from chaos.adapters.local.kernel_recipes import FAULT_TYPES
from chaos.errors import GuardRefused, TargetNotFound
from chaos.faults.targets import TRAFFIC_FILTERS
from chaos.model.experiment import FaultSpec, Target, frozen

NAME = "container.network"
DEFAULT_DEVICE = "eth0"


def kernel_fault(fault: FaultSpec, netns: str, peer: str | None = None) -> FaultSpec:
    """The same fault on a `netns` target: the container's namespace, by path; a peer
    container's address becomes the `host` filter."""
    sel = fault.target.selector
    kernel_sel = {"name": netns, "device": sel.get("device") or DEFAULT_DEVICE,
                  **{k: sel[k] for k in TRAFFIC_FILTERS if sel.get(k) is not None}}
    if peer is not None:
        kernel_sel["host"] = peer
    return dataclasses.replace(fault, target=Target("netns", frozen(kernel_sel),
                                                    location=fault.target.location))


@dataclass(frozen=True)
class ContainerNetworkSpec(RevertSpec):
    """The kernel's spec inside the container's namespace, and the container's run: a run
    that ended took its namespace, and the fault in it, along."""

    kernel: KernelSpec
    docker_host: str
    container: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {**self.kernel.to_json(), **self.header(), "docker_host": self.docker_host,
                "container": dict(self.container)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        cls.check_version(data)
        return cls(str(data["adapter"]), KernelSpec.from_json(data), str(data["docker_host"]),
                   dict(data["container"]))


class ContainerNetworkAdapter(Adapter):
    created_by_services = True  # `docker run` services start containers
    name = NAME
    target_kind = "container"
    fault_types: ClassVar[tuple[str, ...]] = FAULT_TYPES
    kernel = NetnsAdapter()

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        host, infos = await selection.resolve_containers(fault, scope)
        peers = await self._peers(fault)
        refs = []
        for info in infos:
            name = selection.container_name(info)
            if selection.in_host_network(info):
                raise GuardRefused(f"{fault.name}: container {name} uses the host's network "
                                   "(network_mode: host): a network fault inside it would hit "
                                   "the whole host", hint="target a container with its own "
                                   "network, or the host's device with target: {interface: "
                                   "{device: ...}} if that is really meant")
            ref = selection.visible(selection.container_ref(info, host, fault), fault)
            netns = selection.netns_path(ref.identity["pid"])
            each: list[str | None] = [*peers] or [None]
            for peer in each:
                (kernel_ref,) = await self.kernel.resolve(kernel_fault(fault, netns, peer),
                                                          scope)
                where = kernel_ref.label.removeprefix(f"netns {netns}/")
                refs.append(dataclasses.replace(
                    ref, label=f"{ref.label} {where}",
                    identity={**ref.identity, "netns": netns, "peer": peer,
                              "kernel": kernel_ref.identity},
                    lock_key=f"container:{ref.identity['id']}:{kernel_ref.lock_key}"
                             + (f":{peer}" if peer else "")))
        return refs

    async def _peers(self, fault: FaultSpec) -> list[str]:
        """The addresses of the peer containers, one injection (nft table) each, so each
        counts toward limits.max_targets."""
        sel = fault.target.selector.get("peer")
        if not sel:
            return []
        if fault.target.selector.get("host") or fault.target.selector.get("cidr"):
            raise GuardRefused(f"{fault.name}: host/cidr and peer both say which addresses",
                               hint="give one of them")
        _, infos = await selection.matching(fault, sel)
        found = [a for info in infos for a in selection.addresses(info)]
        if not found:
            raise TargetNotFound(f"{fault.name}: the peer containers "
                                 f"({', '.join(selection.container_name(i) for i in infos)}) "
                                 "have no address on a container network",
                                 hint="peers must be on a network the target reaches")
        return found

    def _kernel_target(self, target: TargetRef) -> TargetRef:
        return TargetRef("netns", target.label, target.identity["kernel"], target.lock_key)

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        ident = target.identity
        kernel = self.kernel.prepare_spec(kernel_fault(fault, ident["netns"], ident["peer"]),
                                          self._kernel_target(target))
        return ContainerNetworkSpec(
            NAME, kernel, ident["docker_host"],
            {k: ident[k] for k in ("id", "name", "started_at", "pid", "create_time")}).to_json()

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        ident, typed = target.identity, ContainerNetworkSpec.from_json(spec)
        kernel = await self.kernel.inject_spec(
            kernel_fault(fault, ident["netns"], ident["peer"]), typed.kernel)
        return dataclasses.replace(typed, kernel=kernel).to_json()

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        typed = ContainerNetworkSpec.from_json(spec)
        if not selection.main_process_alive(typed.container):
            return "gone"  # the namespace, and the fault in it, went with the container's run
        return await revert_kernel(typed.kernel)
