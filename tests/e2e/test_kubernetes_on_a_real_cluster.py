"""The Kubernetes adapter against a real cluster (kind in CI): skipped unless asked for.

    KUBECONFIG=~/.kube/config .venv/bin/pytest --with-e2e tests/e2e

Each test works in a namespace of its own (deleted afterwards) with a Deployment of pause
containers, runs the real CLI and checks the cluster from outside through the client. The
cluster must be disposable: node tests cordon and taint a node for a few seconds. docs/
kubernetes.md shows the GitHub Actions job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXPERIMENTS, run_chaos
from tests.support.real_cluster import api, namespace, ready, wait

pytestmark = pytest.mark.e2e
__all__ = ["api", "namespace"]  # fixtures
PAUSE = "registry.k8s.io/pause:3.9"


def deploy(api: Any, namespace: str, name: str = "web", replicas: int = 3) -> None:
    labels = {"app": name}
    api.AppsV1Api().create_namespaced_deployment(namespace, {
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": PAUSE}]}}}})
    wait(lambda: ready(api, namespace, name) >= replicas, 180)


def test_pod_delete_experiment_holds_on_a_real_cluster(api: Any, namespace: str,
                                                       tmp_path: Path) -> None:
    deploy(api, namespace)
    journal = tmp_path / "journal.json"
    result = run_chaos("run", str(EXPERIMENTS / "pod-delete.yaml"), "--var",
                       f"namespace={namespace}", "--journal", str(journal), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(journal.read_text())
    assert doc["recovery"]["seconds"] is not None
    assert ready(api, namespace, "web") == 3


def test_scale_down_and_partition_revert_on_a_real_cluster(api: Any, namespace: str,
                                                           tmp_path: Path) -> None:
    deploy(api, namespace, replicas=2)
    path = tmp_path / "e.json"
    path.write_text(json.dumps({
        "title": "e2e", "kubernetes": {"namespaces": [namespace]},
        "faults": [
            {"type": "workload.scale_down", "duration": "5s",
             "target": {"deployment": {"namespace": namespace, "name": "web"}}},
            {"type": "network.partition", "duration": "5s",
             "target": {"pods": {"namespace": namespace, "labels": {"app": "web"}}}}]}))
    result = run_chaos("run", "-q", str(path), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    apps, net = api.AppsV1Api(), api.NetworkingV1Api()
    assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 2
    assert not net.list_namespaced_network_policy(namespace).items
    wait(lambda: ready(api, namespace, "web") == 2, 120)


def test_cordon_and_taint_revert_on_a_real_node(api: Any, tmp_path: Path) -> None:
    core = api.CoreV1Api()
    node = core.list_node().items[0]
    name, taints = node.metadata.name, [t.to_dict() for t in node.spec.taints or ()]
    path = tmp_path / "e.json"
    path.write_text(json.dumps({
        "title": "e2e nodes", "faults": [
            {"type": "node.cordon", "target": {"node": name}, "duration": "3s"},
            {"type": "node.taint", "target": {"node": name}, "duration": "3s",
             "with": {"key": "chaos.dev/e2e"}}]}))
    result = run_chaos("run", "-q", str(path), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    after = core.read_node(name)
    assert bool(after.spec.unschedulable) == bool(node.spec.unschedulable)
    assert [t.to_dict() for t in after.spec.taints or ()] == taints
    assert "chaos.dev/run" not in (after.metadata.labels or {})


def write(path: Path, namespace: str | None, faults: list[dict[str, Any]]) -> Path:
    doc: dict[str, Any] = {"title": "e2e", "faults": faults}
    if namespace:
        doc["kubernetes"] = {"namespaces": [namespace]}
    path.write_text(json.dumps(doc))
    return path


def test_scale_down_under_an_hpa_is_refused_above_zero_and_holds_at_zero(
        api: Any, namespace: str, tmp_path: Path) -> None:
    """The emulator's HPA controller (tests/support/kubernetes/cluster_rules.py) against the real one."""
    deploy(api, namespace, replicas=2)
    api.AutoscalingV2Api().create_namespaced_horizontal_pod_autoscaler(namespace, {
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": "web"},
                 "minReplicas": 2, "maxReplicas": 4,
                 "metrics": [{"type": "Resource", "resource": {
                     "name": "cpu", "target": {"type": "Utilization",
                                               "averageUtilization": 80}}}]}})
    target = {"deployment": {"namespace": namespace, "name": "web"}}
    refused = run_chaos("run", "-q", str(write(tmp_path / "one.json", namespace, [
        {"type": "workload.scale_down", "target": target, "with": {"replicas": 1},
         "duration": "20s"}])), timeout=120)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "HorizontalPodAutoscaler web" in refused.stdout + refused.stderr
    held = run_chaos("run", "-q", str(write(tmp_path / "zero.json", namespace, [
        {"type": "workload.scale_down", "target": target, "duration": "40s"}])), timeout=180)
    assert held.returncode == 0, held.stdout + held.stderr
    assert api.AppsV1Api().read_namespaced_deployment("web", namespace).spec.replicas == 2


def test_drain_refuses_a_bare_pod_before_cordoning(api: Any, namespace: str,
                                                   tmp_path: Path) -> None:
    core = api.CoreV1Api()
    node = core.list_node().items[0]
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "bare"},
        "spec": {"nodeName": node.metadata.name, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "app", "image": PAUSE}]}})
    result = run_chaos("run", "-q", str(write(tmp_path / "drain.json", namespace, [
        {"type": "node.drain", "target": {"node": node.metadata.name}, "duration": "5s"}])),
        timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{namespace}/bare (no controller" in result.stdout + result.stderr
    assert core.read_namespaced_pod("bare", namespace).metadata.deletion_timestamp is None
    assert bool(core.read_node(node.metadata.name).spec.unschedulable) == bool(
        node.spec.unschedulable)


def test_a_cordon_set_again_by_kubectl_during_the_fault_stays(api: Any, tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import chaos_cmd

    core = api.CoreV1Api()
    node = next(n for n in core.list_node().items if not n.spec.unschedulable)
    name = node.metadata.name
    proc = subprocess.Popen(chaos_cmd("run", "-q", str(write(tmp_path / "cordon.json", None, [
        {"type": "node.cordon", "target": {"node": name}, "duration": "10s"}]))))
    try:
        wait(lambda: bool(core.read_node(name).spec.unschedulable), 60)
        for unschedulable in (False, True):  # what `kubectl uncordon; kubectl cordon` sends
            core.patch_node(name, {"spec": {"unschedulable": unschedulable}},
                            field_manager="kubectl-cordon")
        assert proc.wait(120) == 0
        assert core.read_node(name).spec.unschedulable is True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        core.patch_node(name, {"spec": {"unschedulable": False}})
