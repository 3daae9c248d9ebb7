"""network.partition against the NetworkPolicies already in the namespace. Policies are
additive: the emulator's connectivity oracle (cluster_rules.reachable) shows a deny-all policy
leaving an existing allowance working, so the partition is refused naming the policy and what it
allows; a namespace whose policies allow nothing to the pods is partitioned as before. Observed
from the emulator: the policies it holds and the calls it received."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_chaos
from tests.support.kubernetes.cluster_rules import reachable
from tests.kubernetes.conftest import add_pod, calls, write_experiment
from tests.support.kubernetes.emulator import NETPOLS, PODS, Emulator

DENY_ALL = {"podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []}
FROM_FRONTEND = {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                              "ports": [{"protocol": "TCP", "port": 8080}]}]}


def add_policy(k8s: Emulator, name: str, spec: dict) -> None:
    k8s.call(lambda c: c.put(NETPOLS, {"apiVersion": "networking.k8s.io/v1",
                                       "kind": "NetworkPolicy",
                                       "metadata": {"name": name, "namespace": "shop"},
                                       "spec": spec}))


def can_reach(k8s: Emulator, source: str, port: int = 8080) -> bool:
    def check(c: object) -> bool:
        src = c.get(PODS, "shop", source) if source != "node" else "node"  # type: ignore[attr-defined]
        return reachable(c, src, c.get(PODS, "shop", "web"), port)  # type: ignore[arg-type,attr-defined]

    return k8s.call(check)


def partition(tmp_path: Path) -> Path:
    return write_experiment(tmp_path / "partition.json", [{
        "type": "network.partition", "duration": "500ms",
        "target": {"pods": {"namespace": "shop", "labels": {"app": "web"}}}}])


def test_the_emulated_cluster_keeps_an_allowance_under_a_deny_all_policy(
        k8s: Emulator) -> None:
    """The behaviour the adapter must meet, from the NetworkPolicy documentation."""
    for name in ("web", "frontend", "other"):
        add_pod(k8s, name)
    add_policy(k8s, "allow-frontend", FROM_FRONTEND)
    add_policy(k8s, "chaos-partition", DENY_ALL)
    assert can_reach(k8s, "frontend") and not can_reach(k8s, "other")
    assert not can_reach(k8s, "frontend", port=9090) and can_reach(k8s, "node")


def test_a_partition_another_policy_lets_traffic_through_is_refused(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    for name in ("web", "frontend"):
        add_pod(k8s, name)
    add_policy(k8s, "allow-frontend", FROM_FRONTEND)

    result = run_chaos("run", str(partition(tmp_path)), "-q")

    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "NetworkPolicy allow-frontend (ingress from pods app=frontend on TCP/8080)" in out, out
    assert "network.loss" in out, out
    assert calls(k8s, "create", "networkpolicies") == []
    assert can_reach(k8s, "frontend")


def test_policies_that_allow_the_pods_nothing_do_not_stop_it(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    for name in ("web", "frontend", "db"):
        add_pod(k8s, name)
    add_policy(k8s, "default-deny", {"podSelector": {}, "policyTypes": ["Ingress"]})
    add_policy(k8s, "allow-db", {**FROM_FRONTEND, "podSelector": {"matchLabels": {"app": "db"}}})
    journal = tmp_path / "journal.json"

    result = run_chaos("run", str(partition(tmp_path)), "--journal", str(journal), "-q")

    assert result.returncode == 0, result.stdout + result.stderr
    assert len(calls(k8s, "create", "networkpolicies")) == 1
    assert json.loads(journal.read_text())["injections"][0]["outcome"] == "reverted"
