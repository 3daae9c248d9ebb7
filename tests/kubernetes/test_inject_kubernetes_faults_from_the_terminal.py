"""`chaos inject` with kubectl-like flags: -n/--namespace, -l/--selector, --pod, --node,
--deployment, --context; the same engine, ledger and reverts as experiment files."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_chaos
from tests.kubernetes.conftest import add_node, add_workload, calls, wait_ready
from tests.kubernetes.emulator import DEPLOYMENTS, NODES, Emulator


def test_inject_deletes_one_pod_chosen_by_selector(k8s: Emulator, state_dir: Path) -> None:
    add_workload(k8s, "web", replicas=3)
    wait_ready(k8s, "shop", "web", 3)
    result = run_chaos("inject", "pod.delete", "-n", "shop", "-l", "app=web", "--count", "1",
                       "--grace-period", "0s", "--context", "emulator")
    assert result.returncode == 0, result.stdout + result.stderr
    [deleted] = calls(k8s, "delete", "pods")
    assert deleted.namespace == "shop" and deleted.name.startswith("web-")
    [listed] = [c for c in calls(k8s, "list", "pods")][:1]
    assert listed.namespace == "shop"


def test_inject_scales_a_deployment_and_cordons_a_node_for_a_while(k8s: Emulator,
                                                                   state_dir: Path) -> None:
    add_node(k8s, "node-1")
    add_workload(k8s, "api", replicas=2)
    wait_ready(k8s, "shop", "api", 2)
    scaled = run_chaos("inject", "workload.scale_down", "-n", "shop", "--deployment", "api",
                       "--replicas", "0", "--for", "300ms")
    cordoned = run_chaos("inject", "node.cordon", "--node", "node-1", "--for", "300ms")
    assert scaled.returncode == 0, scaled.stdout + scaled.stderr
    assert cordoned.returncode == 0, cordoned.stdout + cordoned.stderr
    assert [c.body["spec"]["replicas"] for c in calls(k8s, "patch", "deployments/scale")] == [0, 2]
    assert k8s.call(lambda c: c.get(DEPLOYMENTS, "shop", "api"))["spec"]["replicas"] == 2
    assert [c.body["spec"]["unschedulable"] for c in calls(k8s, "patch", "nodes")] == [True, False]
    assert not k8s.call(lambda c: c.get(NODES, None, "node-1"))["spec"]["unschedulable"]


def test_inject_refuses_kube_system_unless_allowed(k8s: Emulator, state_dir: Path) -> None:
    add_workload(k8s, "dns", namespace="kube-system", replicas=1)
    wait_ready(k8s, "kube-system", "dns", 1)
    refused = run_chaos("inject", "pod.delete", "-n", "kube-system", "--dry-run")
    assert refused.returncode == 2 and "kube-system" in refused.stdout + refused.stderr
    allowed = run_chaos("inject", "pod.delete", "-n", "kube-system", "--allow-kube-system",
                        "--dry-run")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "pod kube-system/dns-" in allowed.stdout
    assert not [c for c in k8s.cluster.calls if c.verb != "list"]
