"""`chaos inject` with kubectl-like flags: -n/--namespace, -l/--selector, --pod, --node,
--deployment, --context; the same engine, ledger and reverts as experiment files. Kernel
traffic flags given with pod flags filter traffic inside the pods; flags naming a local target
cannot be mixed with pod flags."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_chaos
from tests.kubernetes.conftest import add_node, add_workload, calls, wait_ready
from tests.support.kubernetes.emulator import DEPLOYMENTS, NODES, Emulator
from tests.support.kubernetes.inpod_kubelet import Kubelet, add_pod
from tests.support.kubernetes.inpod_pods import patches, pod  # noqa: F401 - pod: the fixture
from tests.support.netns_traffic import has_table

__all__ = ["pod"]  # the fixture: pod shop/web-1 with a kubelet running its containers


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


def test_inject_selects_nodes_by_label_and_refuses_two_kinds(k8s: Emulator,
                                                             state_dir: Path) -> None:
    """-l alone on a node fault selects nodes (it listed -l back as missing); two kinds of
    object named at once is refused instead of silently using the first."""
    for name, pool in (("node-1", "spot"), ("node-2", "on-demand"), ("node-3", "spot")):
        add_node(k8s, name)
        k8s.call(lambda c, n=name, p=pool: c.objects[NODES, None, n].patch(
            {"metadata": {"labels": {"pool": p}}}))
    cordoned = run_chaos("inject", "node.cordon", "-l", "pool=spot", "--for", "300ms")
    assert cordoned.returncode == 0, cordoned.stdout + cordoned.stderr
    patched = [(c.name, c.body["spec"]["unschedulable"]) for c in calls(k8s, "patch", "nodes")]
    assert sorted(patched) == [("node-1", False), ("node-1", True), ("node-3", False),
                               ("node-3", True)]
    both = run_chaos("inject", "workload.scale_down", "-n", "shop", "--deployment", "api",
                     "--statefulset", "db", "--replicas", "0", "--for", "300ms")
    assert both.returncode == 2 and "give one of --deployment, --statefulset" in both.stderr
    ambiguous = run_chaos("inject", "workload.scale_down", "-n", "shop", "-l", "app=api",
                          "--replicas", "0", "--for", "300ms")
    assert ambiguous.returncode == 2, ambiguous.stderr
    assert "name one with --deployment or --statefulset" in ambiguous.stderr
    assert calls(k8s, "patch", "deployments/scale") == []


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


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_kernel_flags_with_pod_flags_filter_traffic_inside_the_pod(
        k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet, state_dir: Path) -> None:
    """--port/--traffic go into the pods target (the agent's filters); --percent stays the
    packets' share (network.loss's own parameter), --targets-count picks pods."""
    result = run_chaos("inject", "network.loss", "-n", "shop", "--pod", "web-1", "--port", "8080",
                       "--traffic", "egress", "--percent", "30%", "--targets-count", "1",
                       "--for", "300ms")
    assert result.returncode == 0, result.stdout + result.stderr
    sent = patches(k8s)  # hold, and stop unless the agent ended at its deadline first
    assert sent and sent[0]["name"].startswith("chaos-hold-")
    for container in sent:
        args = container["args"]
        assert json.loads(args[args.index("--target") + 1]) == {"port": 8080,
                                                                "direction": "egress"}
        assert json.loads(args[args.index("--with") + 1])["percent"] == pytest.approx(0.3)
    assert not has_table(netns_pair["b"])


def test_local_target_flags_mixed_with_pod_flags_and_bad_shares_are_refused(k8s: Emulator,
                                                             state_dir: Path) -> None:
    add_pod(k8s, "web-1")
    mixed = run_chaos("inject", "network.latency", "-n", "shop", "--pod", "web-1", "--netns",
                      "blue", "--delay", "100ms", "--for", "1s")
    assert mixed.returncode == 2
    assert "--netns name a target on this machine" in mixed.stderr, mixed.stderr
    share = run_chaos("inject", "network.loss", "-n", "shop", "--pod", "web-1", "--percent",
                      "20%", "--targets-percent", "300%", "--for", "1s")
    assert share.returncode == 2 and "--targets-percent: expected a percentage" in share.stderr
    assert k8s.cluster.calls == []


def test_a_filter_the_kernel_adapter_cannot_apply_is_refused_before_any_patch(
        k8s: Emulator, state_dir: Path) -> None:
    add_pod(k8s, "web-1")
    shaped = run_chaos("inject", "network.latency", "-n", "shop", "--pod", "web-1", "--port",
                       "80", "--delay", "100ms", "--for", "1s")
    assert shaped.returncode == 2, shaped.stdout + shaped.stderr
    assert "shapes the whole device; it cannot filter by port" in shaped.stdout
    assert patches(k8s) == []


@pytest.mark.parametrize("args, flag", [
    (["pod.delete", "-l", "app=web", "--grace-period", "5parsecs"], "--grace-period"),
    (["node.drain", "--node", "node-1", "--retry-for", "2fortnights", "--for", "1s"],
     "--retry-for"),
    (["resource.io", "--block-size", "9zz", "--for", "1s"], "--block-size"),
])
def test_a_bad_value_is_named_by_the_flag_as_typed(state_dir: Path, args: list[str],
                                                   flag: str) -> None:
    result = run_chaos("inject", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"chaos inject {args[0]}: {flag}: expected" in result.stderr, result.stderr
    assert flag.replace("-", "_").lstrip("_") not in result.stderr
