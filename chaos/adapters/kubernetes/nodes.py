"""Node faults: cordon, drain (cordon + evictions that respect PodDisruptionBudgets), taint.

Only what we changed is undone. A node that was cordoned before the fault stays cordoned; a
taint is removed only when key, value and effect are ours; a node with the same UID is the same
node (a node re-registered under the name is another). Each change carries the run-id label and
an expiry annotation, and says what was done (`chaos.dev/cordoned`, `chaos.dev/taint`), so
`chaos recover --kubernetes` can undo it from the node alone.

Drain evicts through the Eviction API, so a PodDisruptionBudget can refuse (429). Refused pods
are retried every second for `retry_for` (never past the fault's duration); what was evicted,
refused or skipped (DaemonSet and mirror pods, and pods in namespaces the experiment may not
touch) is written into the revert spec, which the journal shows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from chaos.adapters.base import RevertOutcome, Scope, TargetRef
from chaos.adapters.kubernetes.api import MERGE_PATCH, Api, Blocked, Conflict, Gone, model
from chaos.adapters.kubernetes.connection import marks, unmarks
from chaos.adapters.kubernetes.pods import run_id_of
from chaos.adapters.kubernetes.selection import (
    ClusterAdapter,
    api_of,
    api_of_spec,
    namespace_allowed,
    same_node,
)
from chaos.errors import FaultFailed
from chaos.model.experiment import FaultSpec

log = logging.getLogger(__name__)
ANNOTATION_CORDONED = "chaos.dev/cordoned"
ANNOTATION_TAINT = "chaos.dev/taint"  # key=value:effect of the taint we added
EVICTION_RETRY_EVERY = 1.0
CONFLICT_RETRIES = 5


async def patch_node(api: Api, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = await api.call("patch", "", "nodes", None, "CoreV1Api.patch_node",
                                            name, dict(body), _content_type=MERGE_PATCH)
    return answer


def _node_spec(target: TargetRef) -> dict[str, Any]:
    return {"node": target.identity["name"], "uid": target.identity["uid"]}


async def cordon(api: Api, fault: FaultSpec, scope: Scope, node: str) -> None:
    metadata = marks(run_id_of(scope), fault.duration, fault.type)
    metadata["annotations"][ANNOTATION_CORDONED] = "true"
    await patch_node(api, node, {"metadata": metadata, "spec": {"unschedulable": True}})


async def uncordon(spec: Mapping[str, Any]) -> RevertOutcome:
    if spec.get("action") == "none":
        return "nothing"
    return await uncordon_node(api_of_spec(spec), spec["node"], spec.get("uid"))


async def uncordon_node(api: Api, name: str, uid: str | None) -> RevertOutcome:
    """Uncordon a node we cordoned (our annotation says so) and remove our marks."""
    node = await same_node(api, {"name": name, "uid": uid}) if uid else await read_node(api, name)
    if node is None:
        return "gone"
    if ANNOTATION_CORDONED not in (node["metadata"].get("annotations") or {}):
        return "nothing"  # already uncordoned by `chaos recover` or by hand
    try:
        await patch_node(api, name, {"spec": {"unschedulable": False},
                                     "metadata": unmarks((ANNOTATION_CORDONED,))})
    except Gone:
        return "gone"
    return "reverted"


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
        return {**self.spec_head(fault, action), **_node_spec(target)}

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        if spec["action"] == "uncordon":
            try:
                await cordon(api_of(fault), fault, scope, spec["node"])
            except Gone as exc:
                raise FaultFailed(f"{target.label} left the cluster before it was "
                                  "cordoned") from exc
        return spec

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        return await uncordon(spec)


def _evictable(pod: Mapping[str, Any], fault: FaultSpec) -> str | None:
    """Why a pod on the node is left alone, or None to evict it."""
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
    return None


async def evict(api: Api, pod: Mapping[str, Any], grace: float | None) -> str:
    """evicted | blocked | gone"""
    meta = pod["metadata"]
    body: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction",
                            "metadata": {"name": meta["name"], "namespace": meta["namespace"]}}
    if grace is not None:
        body["deleteOptions"] = {"gracePeriodSeconds": int(grace)}
    try:
        await api.call("create", "", "pods/eviction", meta["namespace"],
                       "CoreV1Api.create_namespaced_pod_eviction", meta["name"],
                       meta["namespace"], model("V1Eviction", body))
    except Blocked:
        return "blocked"
    except Gone:
        return "gone"
    return "evicted"


class DrainAdapter(CordonAdapter):
    """Cordon, then evict; resolve, prepare and the revert (uncordon) are the cordon's."""

    name = "kubernetes.drain"
    fault_types = ("node.drain",)

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        api = api_of(fault)
        await super().inject(fault, target, spec, scope)
        answer = await api.call("list", "", "pods", None,
                                "CoreV1Api.list_pod_for_all_namespaces",
                                field_selector=f"spec.nodeName={spec['node']}")
        pending, skipped = [], []
        for pod in answer.get("items") or ():
            why = _evictable(pod, fault)
            name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
            if why:
                skipped.append(f"{name} ({why})")
            else:
                pending.append(pod)
        evicted: list[str] = []
        give_up = time.monotonic() + min(float(fault.params.get("retry_for", 30.0)),
                                         fault.duration)
        while pending:
            refused = []
            for pod in pending:
                outcome = await evict(api, pod, fault.params.get("grace_period"))
                name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
                if outcome == "blocked":
                    refused.append(pod)
                elif outcome == "evicted":
                    evicted.append(name)
            pending = refused
            if not pending or time.monotonic() + EVICTION_RETRY_EVERY > give_up:
                break
            await asyncio.sleep(EVICTION_RETRY_EVERY)
        blocked = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pending]
        if blocked:
            log.warning("%s: a PodDisruptionBudget kept %d pods on the node: %s", target.label,
                        len(blocked), ", ".join(blocked))
        return {**spec, "evicted": evicted, "blocked_by_pdb": blocked, "skipped": skipped}


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
        return {**self.spec_head(fault, "untaint"), **_node_spec(target),
                "taint": _taint_of(fault)}

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        api, taint = api_of(fault), spec["taint"]
        for _ in range(CONFLICT_RETRIES):
            node = await same_node(api, {"name": spec["node"], "uid": spec["uid"]})
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
                await patch_node(api, spec["node"], {"metadata": metadata,
                                                     "spec": {"taints": [*taints, taint]}})
            except Conflict:
                continue
            return spec
        raise FaultFailed(f"{target.label} kept changing; could not add the taint")

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        return await remove_taint(api_of_spec(spec), spec["node"], spec.get("uid"),
                                  spec["taint"])
