"""`chaos recover --kubernetes`: undo what chaos left in a cluster, found by its marks alone.

The ledger reverts what it knows about. This finds the rest from the cluster itself: every
object chaos creates or changes carries the `chaos.dev/run` label and a `chaos.dev/expires`
annotation, so after the runner, its watchdog and even the machine that ran them are gone,
anyone with the Role can clean up:

    NetworkPolicies we created         deleted
    traffic workers' Jobs              deleted with their pods and their token's Secret
    Deployments / StatefulSets         scaled back to `chaos.dev/replicas`, marks removed
    nodes                              uncordoned (if `chaos.dev/cordoned`), our taint removed
    in-pod faults (`chaos-hold-<id>`)  a stop container, when the agent died without reverting
                                       (its rules stay: SIGKILL, OOM) or is past its deadline

Only expired marks are undone unless `everything` is set: a mark that has not expired belongs
to a run that may still be going (its own revert will come).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chaos.adapters.kubernetes.api import Api
from chaos.adapters.kubernetes.connection import (
    ANNOTATION_EXPIRES,
    ANNOTATION_FAULT,
    LABEL_RUN,
    expired,
    unmarks,
)
from chaos.adapters.kubernetes.nodes import (
    ANNOTATION_CORDONED,
    ANNOTATION_TAINT,
    parse_taint,
    patch_node,
    remove_taint,
    uncordon_node,
)
from chaos.adapters.kubernetes.load_job import WHAT, delete_load_job
from chaos.adapters.kubernetes.pods import delete_policy
from chaos.adapters.kubernetes.selection import WORKLOAD_METHODS, check_namespace
from chaos.adapters.kubernetes.workloads import ANNOTATION_REPLICAS, ANNOTATION_SCALED_TO, restore


@dataclass(frozen=True)
class Swept:
    what: str  # "networkpolicy shop/chaos-partition-..."
    run: str
    outcome: str  # reverted | gone | nothing | skipped (held until ...)


def _skipped(meta: Mapping[str, Any]) -> str:
    """A mark whose run may still hold it: when it expires (then a sweep undoes it)."""
    until = (meta.get("annotations") or {}).get(ANNOTATION_EXPIRES, "?")
    return f"skipped (held until {until})"


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("annotations") or {})


async def sweep(api: Api, namespaces: Iterable[str], *, everything: bool = False,
                settings: Mapping[str, Any] | None = None) -> list[Swept]:
    """Undo expired chaos marks on nodes and in the given namespaces."""
    namespaces = list(namespaces)
    for namespace in namespaces:  # every refusal before anything (nodes too) is changed
        check_namespace(namespace, settings or {}, "",  # the command names itself
                        hint="if you mean it, add --allow-kube-system")
    found: list[Swept] = []
    answer = await api.call("list", "", "nodes", None, "CoreV1Api.list_node",
                            label_selector=LABEL_RUN)
    for node in answer.get("items") or ():
        found.append(await _node(api, node, everything))
    for namespace in namespaces:
        found += await _namespace(api, namespace, everything)
    return found


async def _node(api: Api, node: dict[str, Any], everything: bool) -> Swept:
    meta = node["metadata"]
    what, run = f"node {meta['name']}", str(meta.get("labels", {}).get(LABEL_RUN, "?"))
    if not (everything or expired(meta)):
        return Swept(what, run, _skipped(meta))
    outcomes = []
    taint = parse_taint(_annotations(node).get(ANNOTATION_TAINT, ""))
    if taint is not None:
        outcomes.append(await remove_taint(api, meta["name"], meta.get("uid"), taint))
    if ANNOTATION_CORDONED in _annotations(node):
        outcomes.append(await uncordon_node(api, meta["name"], meta.get("uid")))
    if not outcomes:  # marks without a change we know how to undo: just remove them
        await patch_node(api, meta["name"], {"metadata": unmarks()})
        outcomes.append("nothing")
    return Swept(what, run, "reverted" if "reverted" in outcomes else outcomes[0])


async def _namespace(api: Api, namespace: str, everything: bool) -> list[Swept]:
    found = []
    policies = await api.call("list", "networking.k8s.io", "networkpolicies", namespace,
                              "NetworkingV1Api.list_namespaced_network_policy", namespace,
                              label_selector=LABEL_RUN)
    for policy in policies.get("items") or ():
        meta = policy["metadata"]
        what = f"networkpolicy {namespace}/{meta['name']}"
        run = str(meta.get("labels", {}).get(LABEL_RUN, "?"))
        if everything or expired(meta):
            found.append(Swept(what, run, await delete_policy(api, namespace, meta["name"])))
        else:
            found.append(Swept(what, run, _skipped(meta)))
    found += await _load_jobs(api, namespace, everything)
    for resource, method in WORKLOAD_METHODS.items():
        workloads = await api.call("list", "apps", resource, namespace,
                                   f"AppsV1Api.list_{method}", namespace,
                                   label_selector=LABEL_RUN)
        for workload in workloads.get("items") or ():
            meta = workload["metadata"]
            what = f"{resource[:-1]} {namespace}/{meta['name']}"
            run = str(meta.get("labels", {}).get(LABEL_RUN, "?"))
            replicas = _annotations(workload).get(ANNOTATION_REPLICAS)
            if not (everything or expired(meta)):
                found.append(Swept(what, run, _skipped(meta)))
            elif replicas is None or not replicas.isdigit():
                found.append(Swept(what, run, "nothing"))
            else:
                ours = _annotations(workload).get(ANNOTATION_SCALED_TO, "")
                found.append(Swept(what, run, await restore(
                    api, resource, namespace, meta["name"], meta.get("uid"), int(replicas),
                    int(ours) if ours.isdigit() else None)))
    return found + await _holds(api, namespace, everything)


async def _load_jobs(api: Api, namespace: str, everything: bool) -> list[Swept]:
    """Traffic workers' Jobs; the Secret of each has the Job's name (never listed: a list
    would read every secret of the namespace)."""
    jobs = await api.call("list", "batch", "jobs", namespace,
                          "BatchV1Api.list_namespaced_job", namespace, label_selector=LABEL_RUN)
    found = []
    for job in jobs.get("items") or ():
        meta = job["metadata"]
        if _annotations(job).get(ANNOTATION_FAULT) != WHAT:
            continue  # a Job of ours for something else (never the runner's own)
        what, run = f"job {namespace}/{meta['name']}", str(meta.get("labels", {}).get(LABEL_RUN,
                                                                                        "?"))
        found.append(Swept(what, run, await delete_load_job(api, namespace, meta["name"])
                           if everything or expired(meta) else _skipped(meta)))
    return found


async def _holds(api: Api, namespace: str, everything: bool) -> list[Swept]:
    """In-pod faults: ephemeral containers carry no labels, so every pod is read."""
    from chaos.adapters.kubernetes.ephemeral import sweep_holds

    pods = await api.call("list", "", "pods", namespace, "CoreV1Api.list_namespaced_pod",
                          namespace)
    found = []
    for pod in pods.get("items") or ():
        if pod.get("spec", {}).get("ephemeralContainers"):
            found += [Swept(*item) for item in await sweep_holds(api, pod,
                                                                 everything=everything)]
    return found
