"""SIGKILL of the runner while Kubernetes faults are held: the watchdog, a separate process that
only has the ledger's revert specs (connection, names, UIDs, recorded replicas), makes the
revert calls; and `chaos recover --kubernetes` undoes expired marks found in the cluster alone,
with no ledger at all."""

from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path

from tests.conftest import ROOT, chaos_cmd, run_chaos, status_injections, wait_until
from tests.kubernetes.conftest import add_node, add_workload, calls, wait_ready, write_experiment
from tests.support.kubernetes.emulator import DEPLOYMENTS, NETPOLS, NODES, Emulator

HELD = [
    {"name": "scale", "type": "workload.scale_down", "duration": "60s",
     "target": {"deployment": {"namespace": "shop", "name": "web"}}, "with": {"replicas": 1}},
    {"name": "cordon", "type": "node.cordon", "target": {"node": "node-1"}, "duration": "60s"},
    {"name": "taint", "type": "node.taint", "target": {"node": "node-2"}, "duration": "60s"},
    {"name": "partition", "type": "network.partition", "duration": "60s",
     "target": {"pods": {"namespace": "shop", "labels": {"app": "web"}}}},
    {"name": "drain", "type": "node.drain", "target": {"node": "node-3"}, "duration": "60s"},
]


def test_the_watchdog_reverts_every_kubernetes_fault_after_sigkill(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    add_node(k8s, "node-1")
    add_node(k8s, "node-2")
    add_node(k8s, "node-3")
    add_workload(k8s, "web", replicas=3)
    wait_ready(k8s, "shop", "web", 3)
    path = write_experiment(tmp_path / "held.json", HELD)
    env = {**os.environ, "CHAOS_HEARTBEAT_TIMEOUT": "2"}
    with open(tmp_path / "runner.log", "wb") as log:
        runner = subprocess.Popen(chaos_cmd("run", "-q", str(path)), env=env, cwd=ROOT,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        injected = wait_until(lambda: calls(k8s, "create", "networkpolicies") and len(
            calls(k8s, "patch", "nodes")) >= 3 and calls(k8s, "patch", "deployments/scale") and
            calls(k8s, "list", "pods") and any(c.namespace is None for c in calls(
                k8s, "list", "pods")), 20)
        assert injected is not None, (tmp_path / "runner.log").read_text()
        runner.kill()
        runner.wait(5)

        def reverted() -> bool:
            nodes = [k8s.call(lambda c, n=n: c.get(NODES, None, n))
                     for n in ("node-1", "node-2", "node-3")]
            web = k8s.call(lambda c: c.get(DEPLOYMENTS, "shop", "web"))
            return (not nodes[0]["spec"].get("unschedulable") and not nodes[1]["spec"].get(
                "taints") and not nodes[2]["spec"].get("unschedulable") and
                web["spec"]["replicas"] == 3 and bool(
                calls(k8s, "delete", "networkpolicies")))

        assert wait_until(reverted, 20) is not None, "the watchdog did not revert everything"
    finally:
        runner.kill()
        runner.wait(10)  # an unwaited Popen warns in a later test
    [policy] = calls(k8s, "create", "networkpolicies")
    assert k8s.call(lambda c: c.get(NETPOLS, "shop", policy.body["metadata"]["name"])) is None
    assert [c.body["spec"]["replicas"] for c in calls(k8s, "patch", "deployments/scale")] == [1, 3]
    status = run_chaos("status", "--json")
    assert status_injections(status) == [], status.stdout


def _past() -> str:
    then = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    return then.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_recover_kubernetes_undoes_expired_marks_found_in_the_cluster(
        k8s: Emulator, state_dir: Path) -> None:
    future = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    add_node(k8s, "node-1")
    add_workload(k8s, "web", replicas=1)

    def leftovers(c) -> None:  # type: ignore[no-untyped-def]
        mark = {"labels": {"chaos.dev/run": "lost-run"},
                "annotations": {"chaos.dev/expires": _past()}}
        c.objects[NODES, None, "node-1"].patch({
            "metadata": {**mark, "annotations": {**mark["annotations"],
                                                 "chaos.dev/cordoned": "true",
                                                 "chaos.dev/taint": "chaos.dev/fault=true:NoSchedule"}},
            "spec": {"unschedulable": True, "taints": [
                {"key": "chaos.dev/fault", "value": "true", "effect": "NoSchedule"},
                {"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}})
        c.objects[DEPLOYMENTS, "shop", "web"].patch({"metadata": {
            **mark, "annotations": {**mark["annotations"], "chaos.dev/replicas": "3"}}})
        for name, expires in (("old", _past()), ("current", future)):
            c.put(NETPOLS, {"metadata": {"name": name, "namespace": "shop",
                                         "labels": {"chaos.dev/run": "lost-run"},
                                         "annotations": {"chaos.dev/expires": expires}},
                            "spec": {"podSelector": {}}})

    k8s.call(leftovers)

    result = run_chaos("recover", "--kubernetes", "--namespace", "shop")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "reverted  node node-1 (run lost-run)" in result.stdout
    assert "skipped (held until 20" in result.stdout and "networkpolicy shop/current" in result.stdout
    assert "now with --force" in result.stdout
    node = k8s.call(lambda c: c.get(NODES, None, "node-1"))
    assert not node["spec"]["unschedulable"]
    assert node["spec"]["taints"] == [{"key": "dedicated", "value": "db",
                                       "effect": "NoSchedule"}]
    assert "chaos.dev/run" not in node["metadata"].get("labels", {})
    assert k8s.call(lambda c: c.get(NETPOLS, "shop", "old")) is None
    assert k8s.call(lambda c: c.get(NETPOLS, "shop", "current")) is not None
    web = k8s.call(lambda c: c.get(DEPLOYMENTS, "shop", "web"))
    assert web["spec"]["replicas"] == 3 and "chaos.dev/run" not in web["metadata"]["labels"]
    wait_ready(k8s, "shop", "web", 3)


def test_recover_refuses_kube_system_before_it_changes_anything(
        k8s: Emulator, state_dir: Path) -> None:
    """`-n kube-system` without --allow-kube-system is refused before the node sweep: an
    expired cordon on a node stays until the command is given right."""
    add_node(k8s, "node-1")
    k8s.call(lambda c: c.objects[NODES, None, "node-1"].patch({
        "metadata": {"labels": {"chaos.dev/run": "lost-run"},
                     "annotations": {"chaos.dev/expires": _past(),
                                     "chaos.dev/cordoned": "true"}},
        "spec": {"unschedulable": True}}))

    result = run_chaos("recover", "--kubernetes", "-n", "shop", "-n", "kube-system")

    out = result.stdout + result.stderr
    assert result.returncode == 2, out  # the command's input, not a failed revert (5)
    assert "refusing to touch namespace kube-system" in out, out
    assert "add --allow-kube-system" in out, out
    assert "chaos recover --kubernetes: chaos recover" not in out, out
    assert not [c for c in k8s.cluster.calls if c.verb != "list"], k8s.cluster.calls
    assert k8s.call(lambda c: c.get(NODES, None, "node-1"))["spec"]["unschedulable"] is True
