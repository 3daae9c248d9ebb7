"""Node faults: cordon, drain (cordon + evictions that respect PodDisruptionBudgets), taint.

Only what we changed is undone. A node that was cordoned before the fault stays cordoned, and
so does one someone else cordoned again during it: the cordon is sent with field manager
`chaos`, and the uncordon happens only while `metadata.managedFields` still names us as the
owner of `spec.unschedulable` (an uncordon and `kubectl cordon` in between makes it theirs). A
taint is removed only when key, value and effect are ours; a node with the same UID is the same
node (a node re-registered under the name is another). Each change carries the run-id label and
an expiry annotation, and says what was done (`chaos.dev/cordoned`, `chaos.dev/taint`), so
`chaos recover --kubernetes` can undo it from the node alone.

Drain follows `kubectl drain`: pods without a controller and pods with emptyDir data are not
evicted unless `force: true` (the eviction deletes them for good), and then the fault is refused
before the node is cordoned; DaemonSet and mirror pods, pods in namespaces the experiment may
not touch and the runner's own pod are skipped. Evictions go through the Eviction API: a
PodDisruptionBudget that allows no disruption now (429) is retried every second for
`retry_for` (never past the fault's duration); a refusal that retrying cannot change (500 for a
pod two budgets select, 403 from a misconfigured budget) is recorded for that pod and the drain
goes on with the others. What was evicted, blocked, refused or skipped is written into the
revert spec, which the journal shows.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self

from chaos.adapters.base import RevertOutcome, Scope, TargetRef
from chaos.adapters.kubernetes.api import (
    MERGE_PATCH,
    Api,
    ApiFailed,
    Blocked,
    Conflict,
    Gone,
    Refused,
    Unreachable,
    model,
)
from chaos.adapters.kubernetes.connection import marks, unmarks
from chaos.adapters.kubernetes.pods import grace_of, run_id_of
from chaos.adapters.kubernetes.selection import (
    ClusterAdapter,
    ClusterSpec,
    api_of,
    api_of_spec,
    namespace_allowed,
    same_node,
)
from chaos.errors import FaultFailed, GuardRefused
from chaos.model.experiment import FaultSpec

log = logging.getLogger(__name__)
ANNOTATION_CORDONED = "chaos.dev/cordoned"
ANNOTATION_TAINT = "chaos.dev/taint"  # key=value:effect of the taint we added
EVICTION_RETRY_EVERY = 1.0
CONFLICT_RETRIES = 5
FIELD_MANAGER = "chaos"  # who set spec.unschedulable, as managedFields records it
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


async def patch_node(api: Api, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = await api.call("patch", "", "nodes", None, "CoreV1Api.patch_node",
                                            name, dict(body), _content_type=MERGE_PATCH,
                                            field_manager=FIELD_MANAGER)
    return answer


def unschedulable_owner(node: Mapping[str, Any]) -> str | None:
    """The field manager that last set spec.unschedulable (None: the server keeps no record)."""
    for entry in node.get("metadata", {}).get("managedFields") or ():
        if "f:unschedulable" in ((entry.get("fieldsV1") or {}).get("f:spec") or {}):
            return str(entry.get("manager"))
    return None


DRAINED = ("evicted", "blocked_by_pdb", "refused", "skipped")  # what a drain did, by key


@dataclass(frozen=True)
class NodeSpec(ClusterSpec):
    """A node fault's revert spec: the node (name + UID: a node recreated under the same name
    is not ours), the taint chaos added (node.taint), and what a drain did (for the journal)."""

    node: str = ""
    uid: str | None = None
    taint: Mapping[str, str] | None = None
    drained: Mapping[str, Any] | None = None  # evicted, blocked_by_pdb, refused, skipped

    def to_json(self) -> dict[str, Any]:
        data = {**self.head(), "node": self.node, "uid": self.uid}
        if self.taint is not None:
            data["taint"] = dict(self.taint)
        return {**data, **(self.drained or {})}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        cls.check_version(data)
        uid, taint = data.get("uid"), data.get("taint")
        drained = {k: data[k] for k in DRAINED if k in data}
        return cls(*cls.head_of(data), str(data["node"]), None if uid is None else str(uid),
                   None if taint is None else dict(taint), drained or None)


def _node_spec(adapter: ClusterAdapter, fault: FaultSpec, action: str,
               target: TargetRef) -> NodeSpec:
    return NodeSpec(adapter.name, action, adapter.connection_of(fault),
                    str(target.identity["name"]), target.identity["uid"])


async def cordon(api: Api, fault: FaultSpec, scope: Scope, node: str) -> None:
    metadata = marks(run_id_of(scope), fault.duration, fault.type)
    metadata["annotations"][ANNOTATION_CORDONED] = "true"
    await patch_node(api, node, {"metadata": metadata, "spec": {"unschedulable": True}})


async def uncordon(data: Mapping[str, Any]) -> RevertOutcome:
    spec = NodeSpec.from_json(data)
    if spec.action == "none":
        return "nothing"
    return await uncordon_node(api_of_spec(data), spec.node, spec.uid)


async def uncordon_node(api: Api, name: str, uid: str | None) -> RevertOutcome:
    """Uncordon a node we cordoned (our annotation says so) and remove our marks."""
    node = await same_node(api, {"name": name, "uid": uid}) if uid else await read_node(api, name)
    if node is None:
        return "gone"
    if ANNOTATION_CORDONED not in (node["metadata"].get("annotations") or {}):
        return "nothing"  # already uncordoned by `chaos recover` or by hand
    owner = unschedulable_owner(node)
    theirs = node.get("spec", {}).get("unschedulable") and owner not in (None, FIELD_MANAGER)
    if theirs:
        log.warning("node %s was cordoned again by %s during the fault: it stays cordoned "
                    "(only our marks are removed)", name, owner)
    body: dict[str, Any] = {"metadata": unmarks((ANNOTATION_CORDONED,))}
    if not theirs:
        body["spec"] = {"unschedulable": False}
    try:
        await patch_node(api, name, body)
    except Gone:
        return "gone"
    return "nothing" if theirs else "reverted"


async def read_node(api: Api, name: str) -> dict[str, Any] | None:
    try:
        node: dict[str, Any] = await api.call("get", "", "nodes", None, "CoreV1Api.read_node",
                                              name)
    except Gone:
        return None
    return node


class CordonAdapter(ClusterAdapter):
    name = "kubernetes.cordon"
    target_kind = "node"
    fault_types = ("node.cordon",)

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        # a node cordoned by someone else stays theirs: nothing to undo afterwards
        action = "none" if target.identity.get("unschedulable") else "uncordon"
        return _node_spec(self, fault, action, target).to_json()

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        typed = NodeSpec.from_json(spec)
        if typed.action == "uncordon":
            try:
                await cordon(api_of(fault), fault, scope, typed.node)
            except Gone as exc:
                raise FaultFailed(f"{target.label} left the cluster before it was "
                                  "cordoned") from exc
        return typed.to_json()

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        return await uncordon(spec)


def own_pod() -> tuple[str, str] | None:
    """(namespace, name) of the pod this runner is in: the downward API's CHAOS_POD_NAMESPACE
    and CHAOS_POD_NAME (deploy/kubernetes/experiment-job.yaml sets them), else the in-cluster
    service account's namespace and the hostname, which is the pod's name by default."""
    name, namespace = os.environ.get("CHAOS_POD_NAME"), os.environ.get("CHAOS_POD_NAMESPACE")
    if name and namespace:
        return namespace, name
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip(), os.uname().nodename
        except OSError:
            return None
    return None


def _skipped(pod: Mapping[str, Any], fault: FaultSpec) -> str | None:
    """Why a pod on the node is left alone (kubectl drain's filters), or None."""
    meta = pod["metadata"]
    if any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or ()):
        return "DaemonSet pod"
    if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
        return "static (mirror) pod"
    if not namespace_allowed(meta["namespace"], fault.kubernetes):
        return f"namespace {meta['namespace']} may not be touched"
    if meta.get("deletionTimestamp") or pod.get("status", {}).get("phase") in (
            "Succeeded", "Failed"):
        return "already terminating"
    if own_pod() == (meta["namespace"], meta["name"]):
        return "the chaos runner's own pod"
    return None


def _lost_for_good(pod: Mapping[str, Any]) -> str | None:
    """What an eviction would destroy for good (kubectl drain refuses these without --force,
    --delete-emptydir-data: kubectl pkg/drain/filters.go, unreplicatedFilter and
    localStorageFilter), or None."""
    if not any(o.get("controller") for o in pod["metadata"].get("ownerReferences") or ()):
        return "no controller: nothing would recreate it"
    empty = [v.get("name") for v in pod.get("spec", {}).get("volumes") or () if "emptyDir" in v]
    if empty:
        return f"emptyDir data would be lost ({', '.join(map(str, empty))})"
    return None


def _name(pod: Mapping[str, Any]) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


async def pods_on(api: Api, node: str) -> list[dict[str, Any]]:
    answer = await api.call("list", "", "pods", None, "CoreV1Api.list_pod_for_all_namespaces",
                            field_selector=f"spec.nodeName={node}")
    return list(answer.get("items") or ())


def plan_drain(pods: list[dict[str, Any]], fault: FaultSpec
               ) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """(pods to evict, skipped with why, pods whose eviction would lose them for good)."""
    evict_now, skipped, lost = [], [], []
    for pod in pods:
        why = _skipped(pod, fault)
        loss = None if why or fault.params.get("force") else _lost_for_good(pod)
        if why:
            skipped.append(f"{_name(pod)} ({why})")
        elif loss:
            lost.append(f"{_name(pod)} ({loss})")
        else:
            evict_now.append(pod)
    return evict_now, skipped, lost


async def evict(api: Api, pod: Mapping[str, Any], grace: int | None) -> str:
    """evicted | blocked | gone | refused: REASON"""
    meta = pod["metadata"]
    body: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction",
                            "metadata": {"name": meta["name"], "namespace": meta["namespace"]}}
    if grace is not None:
        body["deleteOptions"] = {"gracePeriodSeconds": grace}
    try:
        await api.call("create", "", "pods/eviction", meta["namespace"],
                       "CoreV1Api.create_namespaced_pod_eviction", meta["name"],
                       meta["namespace"], model("V1Eviction", body))
    except Blocked:
        return "blocked"
    except Gone:
        return "gone"
    except Unreachable:
        raise
    except (Refused, ApiFailed) as exc:  # two budgets (500), a misconfigured one (403)
        return f"refused: {exc}"
    return "evicted"


class DrainAdapter(CordonAdapter):
    """Cordon, then evict; resolve, prepare and the revert (uncordon) are the cordon's."""

    name = "kubernetes.drain"
    fault_types = ("node.drain",)

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        api, typed = api_of(fault), NodeSpec.from_json(spec)
        _, _, lost = plan_drain(await pods_on(api, typed.node), fault)
        if lost:
            raise GuardRefused(f"{target.label}: draining it would delete {len(lost)} pods for "
                               f"good: {', '.join(lost)}",
                               hint="`kubectl drain` refuses these too; set `with: {force: "
                                    "true}` to evict them anyway")
        await super().inject(fault, target, spec, scope)
        # listed again once cordoned: pods placed in between are drained too (or skipped)
        pending, skipped, lost = plan_drain(await pods_on(api, typed.node), fault)
        skipped += [f"{p} (placed after the check: not evicted without force)" for p in lost]
        evicted: list[str] = []
        refused: list[str] = []
        grace = grace_of(fault, target)
        give_up = time.monotonic() + min(float(fault.params.get("retry_for", 30.0)),
                                         fault.duration)
        while pending:
            blocked = []
            for pod in pending:
                outcome = await evict(api, pod, grace)
                if outcome == "blocked":
                    blocked.append(pod)
                elif outcome == "evicted":
                    evicted.append(_name(pod))
                elif outcome.startswith("refused"):
                    refused.append(f"{_name(pod)} ({outcome.partition(': ')[2]})")
            pending = blocked
            if not pending or time.monotonic() + EVICTION_RETRY_EVERY > give_up:
                break
            await asyncio.sleep(EVICTION_RETRY_EVERY)
        left = [_name(p) for p in pending]
        if left:
            log.warning("%s: a PodDisruptionBudget kept %d pods on the node: %s", target.label,
                        len(left), ", ".join(left))
        if refused:
            log.warning("%s: the Eviction API refused %d pods: %s", target.label, len(refused),
                        "; ".join(refused))
        return replace(typed, drained=dict(zip(DRAINED, (evicted, left, refused, skipped),
                                               strict=True))).to_json()


def _taint_of(fault: FaultSpec) -> dict[str, str]:
    return {"key": str(fault.params.get("key", "chaos.dev/fault")),
            "value": str(fault.params.get("value", "true")),
            "effect": str(fault.params.get("effect", "NoSchedule"))}


def describe_taint(taint: Mapping[str, Any]) -> str:
    return f"{taint['key']}={taint.get('value', '')}:{taint['effect']}"


def parse_taint(text: str) -> dict[str, str] | None:
    """The inverse of describe_taint (for `chaos recover --kubernetes`)."""
    head, sep, effect = text.rpartition(":")
    key, eq, value = head.partition("=")
    return {"key": key, "value": value, "effect": effect} if sep and eq and key else None


async def remove_taint(api: Api, name: str, uid: str | None,
                       taint: Mapping[str, Any]) -> RevertOutcome:
    """Remove exactly this taint (key, value, effect) and our marks; retried on conflicts."""
    for _ in range(CONFLICT_RETRIES):
        node = await same_node(api, {"name": name, "uid": uid}) if uid else await read_node(
            api, name)
        if node is None:
            return "gone"
        if (node["metadata"].get("annotations") or {}).get(ANNOTATION_TAINT) != \
                describe_taint(taint):
            # not ours: the inject refused a taint that was there before, or it is undone
            return "nothing"
        taints = node.get("spec", {}).get("taints") or []
        kept = [t for t in taints if not (t.get("key") == taint["key"] and t.get(
            "effect") == taint["effect"] and (t.get("value") or "") == taint.get("value", ""))]
        version = node["metadata"].get("resourceVersion")
        body: dict[str, Any] = {"metadata": {**unmarks((ANNOTATION_TAINT,)),
                                             "resourceVersion": version},
                                "spec": {"taints": kept}}
        try:
            await patch_node(api, name, body)
        except Conflict:
            continue
        except Gone:
            return "gone"
        return "reverted" if len(kept) != len(taints) else "nothing"
    raise FaultFailed(f"node {name} kept changing; could not remove taint "
                      f"{describe_taint(taint)}")


class TaintAdapter(ClusterAdapter):
    name = "kubernetes.taint"
    target_kind = "node"
    fault_types = ("node.taint",)

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        return replace(_node_spec(self, fault, "untaint", target),
                       taint=_taint_of(fault)).to_json()

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        api, typed = api_of(fault), NodeSpec.from_json(spec)
        taint = dict(typed.taint or {})
        for _ in range(CONFLICT_RETRIES):
            node = await same_node(api, {"name": typed.node, "uid": typed.uid})
            if node is None:
                raise FaultFailed(f"{target.label} left the cluster before it was tainted")
            taints = node.get("spec", {}).get("taints") or []
            if any(t.get("key") == taint["key"] and t.get("effect") == taint["effect"]
                   for t in taints):
                raise FaultFailed(f"{target.label} already has a {taint['key']}:"
                                  f"{taint['effect']} taint; it is not ours to remove later",
                                  hint="pick another `key` for the fault's taint")
            metadata = marks(run_id_of(scope), fault.duration, fault.type)
            metadata["annotations"][ANNOTATION_TAINT] = describe_taint(taint)
            metadata["resourceVersion"] = node["metadata"].get("resourceVersion")
            try:
                await patch_node(api, typed.node, {"metadata": metadata,
                                                     "spec": {"taints": [*taints, taint]}})
            except Conflict:
                continue
            return typed.to_json()
        raise FaultFailed(f"{target.label} kept changing; could not add the taint")

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        typed = NodeSpec.from_json(spec)
        return await remove_taint(api_of_spec(spec), typed.node, typed.uid,
                                  dict(typed.taint or {}))
