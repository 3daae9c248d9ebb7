"""Kubernetes probes for hypotheses: enough ready pods, enough available replicas.

    pods        ok when at least `min_ready` pods matching the selector are Ready
    deployment  ok when a Deployment (or StatefulSet) has at least `min_available` available
                replicas (default: its desired replica count)

Each answer is one LIST through the same call boundary as the faults, so errors read the same
(a 403 names the missing rule). A LIST names what it wants (label and field selectors, the
workload by `metadata.name`) and reads with resourceVersion=0, from the API server's watch
cache: a probe asks every few hundred milliseconds and must not cost an etcd read each time.
A throttled read (429) is retried with backoff at the call boundary, then is a failed sample.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from chaos.adapters.kubernetes.api import ApiFailed, Blocked, api_for
from chaos.adapters.kubernetes.selection import WORKLOAD_METHODS, list_pods, namespace_for
from chaos.errors import UsageError


def _ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions") or ())


def answers(probe: Callable[[Mapping[str, Any], Mapping[str, Any]], Awaitable[tuple[bool, str]]]
            ) -> Callable[[Mapping[str, Any], Mapping[str, Any]], Awaitable[tuple[bool, str]]]:
    """An API that does not answer (or answers 5xx, or 429 after the retries) is a failed
    sample, not a broken probe; a refusal (401/403) or a bad kubeconfig still stops the run, as
    a misconfigured probe."""

    @functools.wraps(probe)
    async def sample(spec: Mapping[str, Any], settings: Mapping[str, Any]) -> tuple[bool, str]:
        try:
            return await probe(spec, settings)
        except (ApiFailed, Blocked) as exc:
            return False, str(exc)

    return sample


@answers
async def ready_pods(spec: Mapping[str, Any], settings: Mapping[str, Any]) -> tuple[bool, str]:
    api = api_for(settings)
    namespace = await namespace_for(api, spec, settings)
    try:
        pods = await list_pods(api, namespace, spec, cached=True)
    except UsageError as exc:
        raise UsageError(f"pods probe in {namespace}: {exc}") from exc
    ready = sum(1 for p in pods if _ready(p))
    wanted = int(spec.get("min_ready") or 1)
    return ready >= wanted, f"{ready}/{len(pods)} ready (want {wanted})"


@answers
async def available_replicas(spec: Mapping[str, Any],
                             settings: Mapping[str, Any]) -> tuple[bool, str]:
    api = api_for(settings)
    namespace = await namespace_for(api, spec, settings)
    resource = "statefulsets" if spec.get("kind") == "statefulset" else "deployments"
    answer = await api.call("list", "apps", resource, namespace,
                            f"AppsV1Api.list_{WORKLOAD_METHODS[resource]}", namespace,
                            field_selector=f"metadata.name={spec['name']}", resource_version="0")
    found = answer.get("items") or ()
    if not found:
        return False, f"{resource[:-1]} {namespace}/{spec['name']} not found"
    obj = found[0]
    desired = int(obj.get("spec", {}).get("replicas", 1))
    available = int(obj.get("status", {}).get("availableReplicas") or 0)
    wanted = int(spec["min_available"]) if spec.get("min_available") is not None else desired
    return available >= wanted, f"{available}/{desired} available (want {wanted})"
