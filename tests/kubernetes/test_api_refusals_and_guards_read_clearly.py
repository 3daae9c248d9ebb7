"""What a person sees when the cluster says no, or a guard does: 401 and 403 name the verb, the
resource, the namespace and the Role that grants it; kube-system and namespaces outside the
allowlist are refused before anything is touched; a revert on a pod or node that is gone (or
was replaced: another UID) counts as done and never hangs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chaos.adapters.kubernetes.connection import Connection
from chaos.adapters.registry import new_registry
from tests.conftest import run_chaos
from tests.kubernetes.conftest import add_node, add_workload, wait_ready, write_experiment
from tests.kubernetes.emulator import NODES, Emulator

DELETE = [{"type": "pod.delete", "target": {"pods": {"namespace": "shop",
                                                     "labels": {"app": "web"}}, "count": 1}}]


@pytest.fixture
def web(k8s: Emulator) -> Emulator:
    add_workload(k8s, "web", replicas=2)
    wait_ready(k8s, "shop", "web", 2)
    return k8s


def test_403_names_the_missing_rule_and_the_role_to_apply(web: Emulator, state_dir: Path,
                                                          tmp_path: Path) -> None:
    web.cluster.deny.add(("delete", "", "pods"))
    result = run_chaos("run", "-q", str(write_experiment(tmp_path / "e.json", DELETE)))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out  # PermissionDenied
    assert "not allowed to delete pods in namespace shop (403 Forbidden)" in out
    assert 'cannot delete resource "pods"' in out  # the API server's own words, cut short
    assert "the Role chaos-runner has this rule" in out
    assert 'resources: ["pods"], verbs: ["delete"]' in out
    assert "Traceback" not in out


def test_403_on_a_cluster_scoped_resource_points_at_the_cluster_role(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    add_node(k8s, "node-1")
    k8s.cluster.deny.add(("get", "", "nodes"))
    path = write_experiment(tmp_path / "e.json", [{"type": "node.cordon", "duration": "1s",
                                                   "target": {"node": "node-1"}}])
    result = run_chaos("run", "-q", str(path))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out  # refused while planning: nothing was touched
    assert "not allowed to get nodes (403 Forbidden)" in out
    assert "ClusterRole chaos-runner-nodes" in out
    assert not [c for c in k8s.cluster.calls if c.verb == "patch"]


def test_401_says_the_credentials_were_refused(web: Emulator, state_dir: Path,
                                               tmp_path: Path) -> None:
    web.cluster.unauthorized = True
    result = run_chaos("run", "-q", str(write_experiment(tmp_path / "e.json", DELETE)))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "refused our credentials (401 Unauthorized) to list pods in namespace shop" in out
    assert "not-a-secret" not in out  # the token never reaches the output


@pytest.mark.parametrize("namespace, settings, expected", [
    ("kube-system", {}, "refusing to touch namespace kube-system"),
    ("payments", {"namespaces": ["shop"]}, "namespace payments is not in kubernetes.namespaces"),
])
def test_guards_refuse_namespaces_before_any_call_changes_anything(
        k8s: Emulator, state_dir: Path, tmp_path: Path, namespace: str,
        settings: dict[str, object], expected: str) -> None:
    add_workload(k8s, "dns", namespace=namespace, replicas=1)
    wait_ready(k8s, namespace, "dns", 1)
    faults = [{"type": "pod.delete", "target": {"pods": {"namespace": namespace}}}]
    path = write_experiment(tmp_path / "e.json", faults, kubernetes=settings)
    result = run_chaos("run", "-q", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stdout + result.stderr
    assert not [c for c in k8s.cluster.calls if c.verb != "list"]


def test_kube_system_is_allowed_when_the_experiment_says_so(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    add_workload(k8s, "dns", namespace="kube-system", replicas=1)
    wait_ready(k8s, "kube-system", "dns", 1)
    faults = [{"type": "pod.delete", "target": {"pods": {"namespace": "kube-system"}}}]
    path = write_experiment(tmp_path / "e.json", faults,
                            kubernetes={"allow_kube_system": True})
    result = run_chaos("run", "-q", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert [c.namespace for c in k8s.cluster.calls if c.verb == "delete"] == ["kube-system"]


def test_reverts_on_vanished_or_replaced_targets_count_as_gone(k8s: Emulator) -> None:
    add_node(k8s, "node-1")
    conn = Connection.from_settings({}).as_spec()
    node = k8s.call(lambda c: c.get(NODES, None, "node-1"))
    registry = new_registry()
    specs = [
        {"adapter": "kubernetes.cordon", "action": "uncordon", "connection": conn,
         "node": "node-1", "uid": "an-older-node"},  # same name, another UID
        {"adapter": "kubernetes.taint", "action": "untaint", "connection": conn,
         "node": "node-9", "uid": "x", "taint": {"key": "k", "value": "v", "effect": "NoSchedule"}},
        {"adapter": "kubernetes.scale", "action": "restore", "connection": conn,
         "resource": "deployments", "namespace": "shop", "name": "web", "uid": "u", "replicas": 3},
        {"adapter": "kubernetes.partition", "action": "delete", "connection": conn,
         "namespace": "shop", "name": "chaos-partition-gone"},
    ]

    async def revert_all() -> list[str]:
        return [await asyncio.wait_for(registry.revert(s), 10) for s in specs]

    assert asyncio.run(revert_all()) == ["gone"] * 4
    assert k8s.call(lambda c: c.get(NODES, None, "node-1")) == node
    assert not [c for c in k8s.cluster.calls if c.verb in ("patch", "create")]
