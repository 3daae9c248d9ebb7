"""Pod faults: delete pods, and partition them from the network with a NetworkPolicy we own.

pod.delete has nothing to revert: the pod's owner (ReplicaSet, StatefulSet) creates a new one,
and the revert spec records which owner, or that nothing will (a bare pod stays deleted). The
delete carries a UID precondition, so a pod that was replaced since selection is not hit.
`grace_period: 0s` is sent as 1 s unless `force: true`, as kubectl does: a grace period of 0
removes the pod object at once while its containers may still run, so a StatefulSet can start
a second copy of the pod beside the first.

network.partition on pods creates a deny-all NetworkPolicy (no ingress, no egress rules) whose
podSelector is the target's labels; the revert deletes it. The policy carries the run-id label
and an expiry annotation, so `chaos recover --kubernetes` removes it when everything else died.
Selecting by labels means pods the owner creates during the fault are partitioned too, as they
would be by any policy; the cluster's network plugin must enforce NetworkPolicies. Policies only
add allowances, so a partition of pods another policy already lets traffic reach (or leave) is
refused, naming the policy and what it allows (chaos.adapters.kubernetes.policies). Whether
the network plugin enforces the policy at all is measured with `verify_port`: the runner
connects to each pod's IP before the policy (it must get through) and after it, and the fault
counts as injected only once new connections fail; if they still get through after 10 s (or
the fault's duration), the fault fails and the policy is deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Self

from chaos.adapters.base import RevertOutcome, Scope, TargetRef
from chaos.adapters.kubernetes.api import Conflict, Gone, model
from chaos.adapters.kubernetes.connection import marks
from chaos.adapters.kubernetes.policies import allowing
from chaos.adapters.kubernetes.selection import (
    ClusterAdapter,
    ClusterSpec,
    api_of,
    api_of_spec,
    check_labels,
    label_selector,
    matching_pods,
    refuse_by_rules,
)
from chaos.errors import FaultFailed, GuardRefused
from chaos.model.experiment import FaultSpec, thaw


log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 0.5  # a dropped SYN: the policy holds
VERIFY_EVERY = 0.2
VERIFY_WITHIN = 10.0  # the plugin programs the policy within this (never past the duration)
VERIFY_HINT = ("`verify_port` connects from the runner to the pods' IPs: run the experiment in "
               "the cluster (deploy/kubernetes/experiment-job.yaml), name a port the pods "
               "listen on, or leave `verify_port` out")


def grace_of(fault: FaultSpec, target: TargetRef) -> int | None:
    """The grace period to send: 0 only with `force: true`, else at least 1 s (kubectl's
    delete.go: "we convert --grace-period=0 into --grace-period=1 ... Users may provide --force
    to bypass this conversion")."""
    grace = fault.params.get("grace_period")
    if grace is None:
        return None
    if int(grace) == 0 and not fault.params.get("force"):
        log.warning("%s: grace_period 0s would force-delete %s (the object goes at once while "
                    "its containers may still run): using 1s, as kubectl does; set `force: "
                    "true` to force it", fault.name, target.label)
        return 1
    return int(grace)


def run_id_of(scope: Scope) -> str:
    """The run's id for labels (the engine offers it; ad hoc callers may not)."""
    return scope.run_id or "adhoc"


@dataclass(frozen=True)
class PodDeleteSpec(ClusterSpec):
    """Nothing to undo (the owner recreates the pod, or it stays deleted): the pod and how it
    was deleted, for the journal."""

    pod: Mapping[str, Any] = field(default_factory=dict)  # namespace, name, uid
    recreated_by: str = ""
    grace_period: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.head(), "pod": dict(self.pod), "recreated_by": self.recreated_by,
                "grace_period": self.grace_period}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        cls.check_version(data)
        grace = data.get("grace_period")
        return cls(*cls.head_of(data), dict(data.get("pod") or {}),
                   str(data.get("recreated_by", "")), None if grace is None else int(grace))


@dataclass(frozen=True)
class PartitionSpec(ClusterSpec):
    """The NetworkPolicy chaos creates, by a name chosen before it exists."""

    namespace: str = ""
    name: str = ""
    verified: str | None = None  # with verify_port: how the cut was seen

    def to_json(self) -> dict[str, Any]:
        data = {**self.head(), "namespace": self.namespace, "name": self.name}
        return data if self.verified is None else {**data, "verified": self.verified}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        cls.check_version(data)
        verified = data.get("verified")
        return cls(*cls.head_of(data), str(data["namespace"]), str(data["name"]),
                   None if verified is None else str(verified))


class PodDeleteAdapter(ClusterAdapter):
    name = "kubernetes.pod"
    target_kind = "pods"
    fault_types = ("pod.delete",)

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        ident = target.identity
        owner = ident.get("owner")
        return PodDeleteSpec(self.name, "none", self.connection_of(fault),
                             {k: ident[k] for k in ("namespace", "name", "uid")},
                             owner or "nothing (a bare pod: it stays deleted)",
                             grace_of(fault, target)).to_json()

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        typed = PodDeleteSpec.from_json(spec)
        pod, grace = typed.pod, typed.grace_period
        options: dict[str, Any] = {"preconditions": {"uid": pod["uid"]}}
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        try:
            await api_of(fault).call("delete", "", "pods", pod["namespace"],
                                     "CoreV1Api.delete_namespaced_pod", pod["name"],
                                     pod["namespace"], body=model("V1DeleteOptions", options))
        except (Gone, Conflict) as exc:
            raise FaultFailed(f"{target.label} was gone or replaced before it could be "
                              f"deleted") from exc
        return typed.to_json()

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        PodDeleteSpec.from_json(spec)  # a version this chaos cannot read is refused all the same
        return "nothing"


class PartitionAdapter(ClusterAdapter):
    name = "kubernetes.partition"
    target_kind = "pods"
    fault_types = ("network.partition",)

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        from chaos.faults.network import partition_check

        refuse_by_rules(fault, partition_check)
        check_labels(fault)
        selector = fault.target.selector
        namespace, pods = await matching_pods(api_of(fault), fault)
        labels = dict(selector["labels"])
        existing = await api_of(fault).call(
            "list", "networking.k8s.io", "networkpolicies", namespace,
            "NetworkingV1Api.list_namespaced_network_policy", namespace)
        allowed = allowing(existing.get("items") or (), pods)
        if allowed:
            raise GuardRefused(
                f"{fault.name}: the pods {label_selector(labels)} in {namespace} are already "
                f"selected by NetworkPolicy {'; '.join(allowed)}. Policies only add "
                "allowances, so a deny-all policy would not cut that traffic and the partition "
                "would hold only in part",
                hint="partition them inside the pods instead (`network.loss` with `percent: "
                     "100%` on the same pods, through an ephemeral container), or narrow that "
                     "policy for the experiment")
        return [TargetRef(
            kind="pods", label=f"pods {label_selector(labels)} in {namespace} ({len(pods)} now)",
            identity={"namespace": namespace, "labels": labels,
                      "pods": [p["metadata"].get("uid") for p in pods],
                      "ips": [ip for p in pods if (ip := p.get("status", {}).get("podIP"))]},
            lock_key=f"k8s:partition:{namespace}:{label_selector(labels)}")]

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        # the name is chosen before anything exists, so the intent record can delete it
        return PartitionSpec(self.name, "delete", self.connection_of(fault),
                             str(target.identity["namespace"]),
                             f"chaos-partition-{uuid.uuid4().hex[:10]}").to_json()

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        mark, typed = marks(run_id_of(scope), fault.duration, fault.type), PartitionSpec.from_json(
            spec)
        policy = {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": typed.name, "namespace": typed.namespace, **mark},
            "spec": {"podSelector": {"matchLabels": thaw(target.identity["labels"])},
                     "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []},
        }
        port = fault.params.get("verify_port")
        ips = list(target.identity.get("ips") or ())
        if port is not None:
            await reachable_before(fault, target, ips, int(port))
        await api_of(fault).call("create", "networking.k8s.io", "networkpolicies",
                                 typed.namespace,
                                 "NetworkingV1Api.create_namespaced_network_policy",
                                 typed.namespace, model("V1NetworkPolicy", policy))
        if port is None:
            return typed.to_json()
        took = await cut_off(fault, target, ips, int(port))
        return replace(typed, verified=f"new connections to {len(ips)} pods on port {port} "
                                       f"failed {took:.1f}s after the policy was created"
                       ).to_json()

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        typed = PartitionSpec.from_json(spec)
        return await delete_policy(api_of_spec(spec), typed.namespace, typed.name)


async def _connects(ip: str, port: int) -> bool:
    """Is a new TCP connection to ip:port accepted? The port accepted one before the policy,
    so a refusal after it is the plugin rejecting (an ICMP unreachable reads as "refused"),
    and a timeout is the plugin dropping: both mean cut."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), CONNECT_TIMEOUT)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def reachable_before(fault: FaultSpec, target: TargetRef, ips: list[str],
                           port: int) -> None:
    """The check is worth something only if the runner reaches the pods without the policy."""
    results = await asyncio.gather(*(_connects(ip, port) for ip in ips))
    unreached = [ip for ip, ok in zip(ips, results, strict=True) if not ok]
    if not ips or unreached:
        raise FaultFailed(f"{fault.name}: cannot verify the partition of {target.label}: "
                          f"{', '.join(unreached) or 'no pod IP'} port {port} does not answer "
                          "the runner even before it", hint=VERIFY_HINT)


async def cut_off(fault: FaultSpec, target: TargetRef, ips: list[str], port: int) -> float:
    """Seconds until every new connection fails; FaultFailed if they still get through."""
    started = time.monotonic()
    give_up = started + min(VERIFY_WITHIN, fault.duration)
    while True:
        results = await asyncio.gather(*(_connects(ip, port) for ip in ips))
        through = [ip for ip, ok in zip(ips, results, strict=True) if ok]
        if not through:
            return time.monotonic() - started
        if time.monotonic() > give_up:
            raise FaultFailed(
                f"{fault.name}: the partition of {target.label} did not hold: new connections "
                f"to {', '.join(through)} port {port} still got through "
                f"{time.monotonic() - started:.0f}s after the NetworkPolicy was created",
                hint="the cluster's network plugin must enforce NetworkPolicies (kindnet and "
                     "flannel do not; Calico and Cilium do); or a policy outside the namespace "
                     "(e.g. a cluster-wide one of the plugin) allows this traffic")
        await asyncio.sleep(VERIFY_EVERY)


async def delete_policy(api: Any, namespace: str, name: str) -> RevertOutcome:
    try:
        await api.call("delete", "networking.k8s.io", "networkpolicies", namespace,
                       "NetworkingV1Api.delete_namespaced_network_policy", name, namespace)
    except Gone:
        return "gone"
    return "reverted"
