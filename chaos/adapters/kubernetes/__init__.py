"""The Kubernetes adapter: pods, workloads, nodes, NetworkPolicies; no operator, no DaemonSet.

The only package that imports the `kubernetes` client, and only inside functions, so importing
this package (the adapter registry does) costs nothing until a Kubernetes fault or probe runs.
`rbac.py` lists exactly the API verbs the adapter uses; deploy/kubernetes/ grants them.

    connection  which cluster (kubeconfig + context, or the service account); marks we leave
    api         the call boundary: blocking client in a thread, errors mapped, calls counted
    selection   pods / workloads / nodes from selectors; namespace guards; identity by UID
    pods        pod.delete, network.partition (NetworkPolicy)
    workloads   workload.scale_down
    nodes       node.cordon, node.drain, node.taint
    load_job    traffic workers as a Job (+ the Secret with their token), deleted on revert
    sweep       `chaos recover --kubernetes`: undo expired marks found in the cluster
    probes      ready pods, available replicas
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.adapters.base import Adapter

if TYPE_CHECKING:
    from chaos.adapters.base import Registrar


def adapters() -> list[Adapter]:
    """The built-in Kubernetes adapters, each a fresh instance."""
    from chaos.adapters.kubernetes import (
        ephemeral,
        ephemeral_kill,
        load_job,
        nodes,
        pods,
        workloads,
    )

    return [
        pods.PodDeleteAdapter(), pods.PartitionAdapter(),
        workloads.ScaleDownAdapter(), workloads.StatefulSetScaleDownAdapter(),
        nodes.CordonAdapter(), nodes.DrainAdapter(), nodes.TaintAdapter(),
        ephemeral.PodNetworkAdapter(), ephemeral.PodResourceAdapter(),  # in-pod faults (6b)
        ephemeral.PodHttpAdapter(),  # http.* in pods: the proxy behind an nft redirect (16)
        ephemeral_kill.ContainerKillAdapter(),
        load_job.LoadJobAdapter(),  # no fault: reverts the Job of `traffic.workers.kubernetes`
    ]


def register(registry: Registrar) -> None:
    """Add the built-in Kubernetes adapters to `registry` (each is verified as it is added)."""
    for adapter in adapters():
        registry.add(adapter)
