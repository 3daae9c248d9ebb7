"""Scale a Deployment or StatefulSet down for a while, and back to the recorded replica count.

The replica count is read when the target is resolved and written into the revert spec before
anything changes (the ledger's intent), so the watchdog or `chaos recover` restore it from the
spec alone. The workload also gets the run-id label and annotations saying what it was scaled
from and when that expires, so `chaos recover --kubernetes` finds it even without the ledger.
A workload whose UID changed (deleted and recreated) is not ours to scale: the revert counts it
as gone. A count that is no longer the one we set (someone scaled it during the fault) is left
as it is: the revert removes our marks and says so.

A HorizontalPodAutoscaler on the workload puts its replicas back within one sync (15 s by
default), so a scale-down to N > 0 would not hold and is refused; a scale-down to 0 holds (the
HPA controller leaves a target at 0 replicas alone: "scaling is disabled since the replica
count of the target is zero") and the revert's scale-up hands the workload back to it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Self

from chaos.adapters.base import RevertOutcome, Scope, TargetRef
from chaos.adapters.kubernetes.api import MERGE_PATCH, Api, Gone
from chaos.adapters.kubernetes.connection import LABEL_RUN, marks, unmarks
from chaos.adapters.kubernetes.pods import run_id_of
from chaos.adapters.kubernetes.selection import (
    WORKLOAD_METHODS,
    ClusterAdapter,
    ClusterSpec,
    api_of,
    api_of_spec,
)
from chaos.errors import FaultFailed, GuardRefused
from chaos.model.experiment import FaultSpec

ANNOTATION_REPLICAS = "chaos.dev/replicas"  # what the workload is restored to
ANNOTATION_SCALED_TO = "chaos.dev/scaled-to"  # what we set: restored only while it still is
KINDS = {"deployments": "Deployment", "statefulsets": "StatefulSet"}
log = logging.getLogger(__name__)


async def autoscalers(api: Api, resource: str, namespace: str, name: str) -> list[str]:
    """The HorizontalPodAutoscalers that scale this workload, as "name (min..max)"."""
    answer = await api.call("list", "autoscaling", "horizontalpodautoscalers", namespace,
                            "AutoscalingV2Api.list_namespaced_horizontal_pod_autoscaler",
                            namespace)
    found = []
    for hpa in answer.get("items") or ():
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        if ref.get("kind") == KINDS[resource] and ref.get("name") == name:
            found.append(f"{hpa['metadata']['name']} ({spec.get('minReplicas', 1)}.."
                         f"{spec.get('maxReplicas')})")
    return found


async def read_workload(api: Api, resource: str, namespace: str, name: str,
                        uid: str | None) -> dict[str, Any] | None:
    try:
        obj = await api.call("get", "apps", resource, namespace,
                             f"AppsV1Api.read_{WORKLOAD_METHODS[resource]}", name, namespace)
    except Gone:
        return None
    return obj if uid is None or obj.get("metadata", {}).get("uid") == uid else None


async def scale(api: Api, resource: str, namespace: str, name: str, replicas: int) -> None:
    await api.call("patch", "apps", f"{resource}/scale", namespace,
                   f"AppsV1Api.patch_{WORKLOAD_METHODS[resource]}_scale", name, namespace,
                   {"spec": {"replicas": replicas}}, _content_type=MERGE_PATCH)


async def mark(api: Api, resource: str, namespace: str, name: str,
               metadata: Mapping[str, Any]) -> None:
    await api.call("patch", "apps", resource, namespace,
                   f"AppsV1Api.patch_{WORKLOAD_METHODS[resource]}", name, namespace,
                   {"metadata": dict(metadata)}, _content_type=MERGE_PATCH)


async def restore(api: Api, resource: str, namespace: str, name: str, uid: str | None,
                  replicas: int, ours: int | None = None) -> RevertOutcome:
    """Scale back and remove our marks; a workload that is gone or replaced counts as gone.

    A workload already at the recorded count is not scaled (an inject whose scale call failed,
    e.g. a Role without `patch .../scale`, must not end as a failed revert: nothing changed);
    one at neither that count nor `ours` (the count we set) was scaled by someone else since,
    and keeps their count."""
    workload = await read_workload(api, resource, namespace, name, uid)
    if workload is None:
        return "gone"
    current = int((workload.get("spec") or {}).get("replicas", 1))
    theirs = ours is not None and current not in (ours, replicas)
    if theirs:
        log.warning("%s %s/%s has %d replicas, not the %d the fault set: someone scaled it "
                    "during the fault, so it keeps their count (not restored to %d)",
                    resource[:-1], namespace, name, current, ours, replicas)
    try:
        if current != replicas and not theirs:
            await scale(api, resource, namespace, name, replicas)
        await mark(api, resource, namespace, name,
                   unmarks((ANNOTATION_REPLICAS, ANNOTATION_SCALED_TO)))
    except Gone:
        return "gone"
    return "nothing" if theirs else "reverted"


@dataclass(frozen=True)
class ScaleSpec(ClusterSpec):
    """The workload (resource, namespace, name, UID) and its replica count before the fault,
    the count chaos set (a revert leaves a count someone else changed since alone), and the
    run that marked it first when that was another one (action "none": not ours to restore)."""

    marked_by: str | None = None
    resource: str = ""
    namespace: str = ""
    name: str = ""
    uid: str | None = None
    replicas: int = 0
    scaled_to: int | None = None
    autoscalers: tuple[str, ...] = field(default=())  # seen at injection, for the journal

    def to_json(self) -> dict[str, Any]:
        data = {**self.head(), "marked_by": self.marked_by, "resource": self.resource,
                "namespace": self.namespace, "name": self.name, "uid": self.uid,
                "replicas": self.replicas, "scaled_to": self.scaled_to}
        return {**data, "autoscalers": list(self.autoscalers)} if self.autoscalers else data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        cls.check_version(data)
        marked, uid, ours = data.get("marked_by"), data.get("uid"), data.get("scaled_to")
        return cls(*cls.head_of(data), None if marked is None else str(marked),
                   str(data["resource"]), str(data["namespace"]), str(data["name"]),
                   None if uid is None else str(uid), int(data["replicas"]),
                   None if ours is None else int(ours), tuple(data.get("autoscalers") or ()))


class ScaleDownAdapter(ClusterAdapter):
    name = "kubernetes.scale"
    target_kind = "deployment"
    fault_types = ("workload.scale_down",)

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        ident = target.identity
        # marked by another run: its replica count is the one to restore, not ours to erase
        action = "none" if ident.get("marked_by") else "restore"
        return ScaleSpec(self.name, action, self.connection_of(fault), ident.get("marked_by"),
                         ident["resource"], ident["namespace"], ident["name"], ident["uid"],
                         ident["replicas"], int(fault.params.get("replicas", 0))).to_json()

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        typed = ScaleSpec.from_json(spec)
        if typed.action == "none":
            raise GuardRefused(f"{target.label} is still scaled down by chaos run "
                               f"{typed.marked_by} (label {LABEL_RUN}); its original replica "
                               f"count is in annotation {ANNOTATION_REPLICAS}",
                               hint="wait for that run to end, or undo it with `chaos recover "
                                    f"--kubernetes -n {typed.namespace}` (--force if it has "
                                    "not expired)")
        wanted = int(fault.params.get("replicas", 0))
        if wanted >= typed.replicas:
            raise FaultFailed(f"{target.label} has {typed.replicas} replicas; scaling down to "
                              f"{wanted} would not take any away",
                              hint="set `with: {replicas: N}` below the current count")
        api = api_of(fault)
        hpas = await autoscalers(api, typed.resource, typed.namespace, typed.name)
        if hpas and wanted > 0:
            raise GuardRefused(f"{target.label} is scaled by HorizontalPodAutoscaler "
                               f"{', '.join(hpas)}: it puts the replicas back within one sync "
                               f"(15s by default), so a scale-down to {wanted} would not hold",
                               hint="scale to 0 (`with: {replicas: 0}`: the autoscaler leaves "
                                    "a workload at 0 replicas alone until the revert scales it "
                                    "back), or lower the autoscaler's maxReplicas instead")
        metadata = marks(run_id_of(scope), fault.duration, fault.type)
        metadata["annotations"][ANNOTATION_REPLICAS] = str(typed.replicas)
        metadata["annotations"][ANNOTATION_SCALED_TO] = str(wanted)
        try:
            await mark(api, typed.resource, typed.namespace, typed.name, metadata)
            await scale(api, typed.resource, typed.namespace, typed.name, wanted)
        except Gone as exc:
            raise FaultFailed(f"{target.label} was deleted before it could be scaled") from exc
        return replace(typed, autoscalers=tuple(hpas)).to_json()

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        typed = ScaleSpec.from_json(spec)
        if typed.action == "none":
            return "nothing"
        return await restore(api_of_spec(spec), typed.resource, typed.namespace, typed.name,
                             typed.uid, typed.replicas, typed.scaled_to)


class StatefulSetScaleDownAdapter(ScaleDownAdapter):
    name = "kubernetes.scale.statefulset"
    target_kind = "statefulset"
