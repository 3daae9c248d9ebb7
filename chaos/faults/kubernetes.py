"""Kubernetes faults: pods, workloads and nodes, declared as data.

The adapters (chaos.adapters.kubernetes) implement them; declaring them here lets validation,
`chaos faults` and `chaos inject` know them without importing the `kubernetes` client. The
in-pod network and resource faults are the existing network.* and resource.* types, which also
accept the `pods` target kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaos.faults import container, targets
from chaos.faults.process import KILL_SIGNALS
from chaos.faults.registry import FaultRegistry, FaultType
from chaos.model.experiment import Target
from chaos.model.schema import Bool, Duration, Int, Obj, Str

KINDS = {"pods": targets.PODS, "deployment": targets.DEPLOYMENT,
         "statefulset": targets.STATEFULSET, "node": targets.NODE}
WORKLOADS = ("deployment", "statefulset")

POD_DELETE = FaultType(
    name="pod.delete",
    summary="delete pods; their ReplicaSet or StatefulSet creates new ones (nothing to revert)",
    params=Obj({
        "grace_period": Duration("time the pod gets to stop (default: the pod's own "
                                 "terminationGracePeriodSeconds; 0s is sent as 1s, as kubectl "
                                 "does, unless `force: true`)",
                                 min=0, max=3600),
        "force": Bool("with `grace_period: 0s`, force-delete: the pod object goes at once "
                      "while its containers may still run (a StatefulSet can then run two "
                      "copies)", False),
    }),
    target_kinds=("pods",),
    instant=True,
    check=targets.no_pod_traffic,
)


def kill_check(target: Target, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = [*targets.no_pod_traffic(target, params),
                *container.lifecycle_check(target, params)]
    if target.kind == "container" and params.get("container"):
        problems.append(("with.container", "names a container inside a pod; on a `container` "
                                           "target the target selects it: remove it"))
    if params.get("signal") == "KILL" and target.kind == "pods":
        why = ("SIGKILL cannot reach a container's main process from inside its pod (it is "
               "PID 1 of the container's process namespace, and the kernel drops SIGKILL sent "
               "to it from there): use TERM or another signal the app handles, or pod.delete "
               "with a short `grace_period` (1s)")
        problems.append(("with.signal", why))
    return problems


CONTAINER_KILL = FaultType(
    name="container.kill",
    summary="signal a container's main process: in a pod from an ephemeral container "
            "(pods/exec where ephemeral containers are off); a Docker/Podman container through "
            "the engine (its restart policy decides the rest)",
    params=Obj({
        "container": Str("container name (default: the pod's first container)", min_length=1),
        "signal": Str("signal name without SIG; in a pod, one the container's main process "
                      "handles (SIGKILL never reaches it from inside the pod: use pod.delete)",
                      "TERM",
                      choices=KILL_SIGNALS),
    }),
    target_kinds=("pods", "container"),
    instant=True,
    check=kill_check,
)

SCALE_DOWN = FaultType(
    name="workload.scale_down",
    summary="scale a Deployment or StatefulSet down for the duration; the revert restores the "
            "recorded replica count",
    params=Obj({
        "replicas": Int("replicas during the fault (fewer than now)", 0, min=0),
    }),
    target_kinds=WORKLOADS,
)

CORDON = FaultType(
    name="node.cordon",
    summary="mark nodes unschedulable for the duration (a node cordoned before is left as is)",
    params=Obj({}),
    target_kinds=("node",),
)

DRAIN = FaultType(
    name="node.drain",
    summary="cordon nodes and evict their pods through the Eviction API (PodDisruptionBudgets "
            "are respected; pods that would be lost for good are refused unless `force`); the "
            "revert uncordons",
    params=Obj({
        "grace_period": Duration("time each evicted pod gets to stop (default: its own; 0s "
                                 "is sent as 1s unless `force: true`)", min=0, max=3600),
        "retry_for": Duration("keep retrying evictions a PodDisruptionBudget refuses for this "
                              "long (within the fault's duration), then report the pods left",
                              "30s", min=0, max=3600),
        "force": Bool("also evict pods without a controller and pods with emptyDir data "
                      "(gone for good: `kubectl drain` refuses them without --force and "
                      "--delete-emptydir-data), and allow `grace_period: 0s`", False),
    }),
    target_kinds=("node",),
)

TAINT = FaultType(
    name="node.taint",
    summary="add a taint to nodes for the duration; the revert removes exactly that taint",
    params=Obj({
        "key": Str("taint key", "chaos.dev/fault", pattern=r"([a-z0-9.-]+/)?[A-Za-z0-9_.-]+"),
        "value": Str("taint value", "true", pattern=r"[A-Za-z0-9_.-]{0,63}"),
        "effect": Str("what the taint does to pods that do not tolerate it", "NoSchedule",
                      choices=("NoSchedule", "PreferNoSchedule", "NoExecute")),
    }),
    target_kinds=("node",),
)

FAULTS = (POD_DELETE, CONTAINER_KILL, SCALE_DOWN, CORDON, DRAIN, TAINT)


def register_targets(registry: FaultRegistry) -> None:
    """Before the network and resource faults, which accept `pods` too."""
    for kind, schema in KINDS.items():
        registry.add_target_kind(kind, schema)


def register(registry: FaultRegistry) -> None:
    for fault in FAULTS:
        registry.add(fault)
