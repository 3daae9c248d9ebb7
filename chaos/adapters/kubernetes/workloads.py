"""Scale a Deployment or StatefulSet down for a while, and back to the recorded replica count.

The replica count is read when the target is resolved and written into the revert spec before
anything changes (the ledger's intent), so the watchdog or `chaos recover` restore it from the
spec alone. The workload also gets the run-id label and annotations saying what it was scaled
from and when that expires, so `chaos recover --kubernetes` finds it even without the ledger.
A workload whose UID changed (deleted and recreated) is not ours to scale: the revert counts it
as gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaos.adapters.base import RevertOutcome, Scope, TargetRef
from chaos.adapters.kubernetes.api import MERGE_PATCH, Api, Gone
from chaos.adapters.kubernetes.connection import LABEL_RUN, marks, unmarks
from chaos.adapters.kubernetes.pods import run_id_of
from chaos.adapters.kubernetes.selection import (
    WORKLOAD_METHODS,
    ClusterAdapter,
    api_of,
    api_of_spec,
)
from chaos.errors import FaultFailed, GuardRefused
from chaos.model.experiment import FaultSpec

ANNOTATION_REPLICAS = "chaos.dev/replicas"  # what the workload is restored to


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
                  replicas: int) -> RevertOutcome:
    """Scale back and remove our marks; a workload that is gone or replaced counts as gone.

    A workload already at the recorded count is not scaled (an inject whose scale call failed,
    e.g. a Role without `patch .../scale`, must not end as a failed revert: nothing changed)."""
    workload = await read_workload(api, resource, namespace, name, uid)
    if workload is None:
        return "gone"
    try:
        if int((workload.get("spec") or {}).get("replicas", 1)) != replicas:
            await scale(api, resource, namespace, name, replicas)
        await mark(api, resource, namespace, name, unmarks((ANNOTATION_REPLICAS,)))
    except Gone:
        return "gone"
    return "reverted"


class ScaleDownAdapter(ClusterAdapter):
    name = "kubernetes.scale"
    target_kind = "deployment"
    fault_types = ("workload.scale_down",)

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        ident = target.identity
        # marked by another run: its replica count is the one to restore, not ours to erase
        action = "none" if ident.get("marked_by") else "restore"
        return {**self.spec_head(fault, action), "marked_by": ident.get("marked_by"),
                **{k: ident[k] for k in ("resource", "namespace", "name", "uid", "replicas")}}

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        if spec["action"] == "none":
            raise GuardRefused(f"{target.label} is still scaled down by chaos run "
                               f"{spec['marked_by']} (label {LABEL_RUN}); its original replica "
                               f"count is in annotation {ANNOTATION_REPLICAS}",
                               hint="wait for that run to end, or undo it with `chaos recover "
                                    f"--kubernetes -n {spec['namespace']}` (--force if it has "
                                    "not expired)")
        wanted = int(fault.params.get("replicas", 0))
        if wanted >= spec["replicas"]:
            raise FaultFailed(f"{target.label} has {spec['replicas']} replicas; scaling down to "
                              f"{wanted} would not take any away",
                              hint="set `with: {replicas: N}` below the current count")
        api = api_of(fault)
        metadata = marks(run_id_of(scope), fault.duration, fault.type)
        metadata["annotations"][ANNOTATION_REPLICAS] = str(spec["replicas"])
        try:
            await mark(api, spec["resource"], spec["namespace"], spec["name"], metadata)
            await scale(api, spec["resource"], spec["namespace"], spec["name"], wanted)
        except Gone as exc:
            raise FaultFailed(f"{target.label} was deleted before it could be scaled") from exc
        return spec

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        if spec.get("action") == "none":
            return "nothing"
        return await restore(api_of_spec(spec), spec["resource"], spec["namespace"], spec["name"],
                             spec.get("uid"), int(spec["replicas"]))


class StatefulSetScaleDownAdapter(ScaleDownAdapter):
    name = "kubernetes.scale.statefulset"
    target_kind = "statefulset"
