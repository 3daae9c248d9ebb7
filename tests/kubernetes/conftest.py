"""Fixtures for the Kubernetes adapter tests: the emulator over real HTTP, a kubeconfig for it,
workload factories, and the session-wide record of every API call the adapter made.

`k8s` is a running emulator (tests/support/kubernetes/emulator.py) with KUBECONFIG pointing at it, so
in-process adapters, `chaos run` subprocesses and their watchdogs all use it. Its calls are
added to `API_CALLS` when the test ends; test_the_role_grants_exactly_the_calls_made.py, moved
to the end of the session, compares them with the shipped Role and ClusterRole.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.kubernetes.emulator import (
    DEPLOYMENTS,
    NODES,
    PDBS,
    PODS,
    STATEFULSETS,
    Call,
    Cluster,
    Emulator,
)

API_CALLS: list[tuple[str, Call]] = []  # (test node id, call), across the session
LAST = "test_the_role_grants_exactly_the_calls_made"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The RBAC comparison runs after every other kubernetes test has recorded its calls."""
    items.sort(key=lambda item: LAST in item.nodeid)


@pytest.fixture
def k8s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> Iterator[Emulator]:
    emulator = Emulator(Cluster()).start()
    config = emulator.write_kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(config))
    try:
        yield emulator
    finally:
        emulator.stop()
        API_CALLS.extend((request.node.nodeid, c) for c in emulator.cluster.calls)


def add_node(k8s: Emulator, name: str, **spec: Any) -> dict[str, Any]:
    return k8s.call(lambda c: c.put(NODES, {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": dict(spec), "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))


def add_workload(k8s: Emulator, name: str, namespace: str = "shop", replicas: int = 3,
                 node: str = "node-1", kind: str = "deployment") -> dict[str, Any]:
    """A Deployment (or StatefulSet) whose pods the emulator creates and makes ready."""
    labels = {"app": name}
    resource = DEPLOYMENTS if kind == "deployment" else STATEFULSETS
    return k8s.call(lambda c: c.put(resource, {
        "apiVersion": "apps/v1", "kind": "Deployment" if kind == "deployment" else "StatefulSet",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"nodeName": node}}},
        "status": {}}))


def add_pdb(k8s: Emulator, name: str, namespace: str, labels: dict[str, str],
            min_available: int) -> dict[str, Any]:
    return k8s.call(lambda c: c.put(PDBS, {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": labels}}}))


def add_pod(k8s: Emulator, name: str, namespace: str = "shop", node: str = "node-1",
            owner: str | None = "ReplicaSet", **spec: Any) -> dict[str, Any]:
    """A running, ready pod no emulated controller manages; `owner` is its controller's kind
    (None: a bare pod)."""
    refs = [{"apiVersion": "apps/v1", "kind": owner, "name": f"{name}-owner", "uid": "x",
             "controller": True}] if owner else []
    return k8s.call(lambda c: c.put(PODS, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name},
                     "ownerReferences": refs},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app:1"}], **spec},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}))


def ready_pods(k8s: Emulator, namespace: str, app: str) -> list[dict[str, Any]]:
    from tests.support.kubernetes.emulator import pod_ready

    return [p for p in k8s.call(lambda c: c.pods(namespace))
            if p["metadata"].get("labels", {}).get("app") == app and pod_ready(p)]


def wait_ready(k8s: Emulator, namespace: str, app: str, count: int, timeout: float = 10) -> None:
    import time

    deadline = time.monotonic() + timeout
    while len(ready_pods(k8s, namespace, app)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} ready {app} pods did not appear in {timeout}s")
        time.sleep(0.05)


def write_experiment(path: Path, faults: list[dict[str, Any]], *,
                     kubernetes: dict[str, Any] | None = None,
                     hypothesis: dict[str, Any] | None = None) -> Path:
    """An experiment file (JSON is YAML) with a `kubernetes:` section; shop is allowed."""
    import json

    doc: dict[str, Any] = {"title": "kubernetes test", "faults": faults,
                           "kubernetes": kubernetes or {"namespaces": ["shop"]},
                           "limits": {"max_targets": 10}}
    if hypothesis:
        doc["hypothesis"] = hypothesis
    path.write_text(json.dumps(doc, indent=1))
    return path


def calls(k8s: Emulator, verb: str, resource: str) -> list[Call]:
    return [c for c in k8s.call(lambda c: list(c.calls)) if (c.verb, c.resource) == (verb,
                                                                                     resource)]


__all__ = [
    "API_CALLS",
    "DEPLOYMENTS",
    "NODES",
    "PDBS",
    "PODS",
    "STATEFULSETS",
    "add_node",
    "add_pod",
    "add_pdb",
    "add_workload",
    "calls",
    "ready_pods",
    "wait_ready",
    "write_experiment",
]
