"""Each workload, node and NetworkPolicy fault through `chaos run` against the emulator: the
objects and patches the emulator received while injecting, and the state after the revert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_chaos
from tests.kubernetes.conftest import (
    add_node,
    add_pdb,
    add_workload,
    calls,
    ready_pods,
    wait_ready,
    write_experiment,
)
from tests.support.kubernetes.emulator import DEPLOYMENTS, NETPOLS, NODES, PODS, STATEFULSETS, Emulator

RUN_LABEL, EXPIRES = "chaos.dev/run", "chaos.dev/expires"


def run(path: Path, tmp_path: Path) -> tuple[int, dict, str]:
    journal = tmp_path / "journal.json"
    result = run_chaos("run", str(path), "--journal", str(journal), "-q")
    doc = json.loads(journal.read_text()) if journal.exists() else {}
    return result.returncode, doc, result.stdout + result.stderr


def unmarked(meta: dict) -> bool:
    return RUN_LABEL not in (meta.get("labels") or {}) and not any(
        k.startswith("chaos.dev/") for k in meta.get("annotations") or {})


@pytest.mark.parametrize("kind", ["deployment", "statefulset"])
def test_scale_down_holds_fewer_replicas_then_restores_the_recorded_count(
        k8s: Emulator, state_dir: Path, tmp_path: Path, kind: str) -> None:
    add_workload(k8s, "web", replicas=3, kind=kind)
    wait_ready(k8s, "shop", "web", 3)
    resource, plural = (DEPLOYMENTS, "deployments") if kind == "deployment" else (
        STATEFULSETS, "statefulsets")
    path = write_experiment(tmp_path / "scale.json", [{
        "type": "workload.scale_down", "target": {kind: {"namespace": "shop", "name": "web"}},
        "with": {"replicas": 1}, "duration": "1s"}])

    code, doc, out = run(path, tmp_path)

    assert code == 0, out
    marks = calls(k8s, "patch", plural)
    assert marks[0].body["metadata"]["labels"][RUN_LABEL] == doc["run"]
    assert marks[0].body["metadata"]["annotations"]["chaos.dev/replicas"] == "3"
    assert EXPIRES in marks[0].body["metadata"]["annotations"]
    scales = [c.body["spec"]["replicas"] for c in calls(k8s, "patch", f"{plural}/scale")]
    assert scales == [1, 3]
    history = k8s.call(lambda c: [v["spec"]["replicas"] for v in
                                  c.objects[resource, "shop", "web"].history if v])
    assert 1 in history
    workload = k8s.call(lambda c: c.get(resource, "shop", "web"))
    assert workload["spec"]["replicas"] == 3 and unmarked(workload["metadata"])
    wait_ready(k8s, "shop", "web", 3)
    assert doc["injections"][0]["outcome"] == "reverted"


def test_a_scale_the_role_refuses_changes_nothing_and_is_not_a_failed_revert(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    """A Role without `patch deployments/scale`: the inject fails after marking the workload;
    the revert must remove the marks without that call (the count never changed), so the run
    is a usage error naming the rule (2), not "something may still be injected" (5)."""
    add_workload(k8s, "web", replicas=3)
    wait_ready(k8s, "shop", "web", 3)
    k8s.cluster.deny.add(("patch", "apps", "deployments/scale"))
    path = write_experiment(tmp_path / "scale.json", [{
        "type": "workload.scale_down", "target": {"deployment": {"namespace": "shop",
                                                                  "name": "web"}},
        "duration": "1s"}])

    code, doc, out = run(path, tmp_path)

    assert code == 2, out
    assert 'resources: ["deployments/scale"], verbs: ["patch"]' in out, out
    assert "REVERT FAILED" not in out, out
    workload = k8s.call(lambda c: c.get(DEPLOYMENTS, "shop", "web"))
    assert workload["spec"]["replicas"] == 3 and unmarked(workload["metadata"])
    assert doc["injections"][0]["outcome"] != "failed", doc["injections"]
    assert "no active injections" in run_chaos("status").stdout


def test_a_workload_another_run_scaled_down_is_refused_and_its_marks_are_kept(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    """A run killed with its watchdog left web at 1 replica, marked "restore to 3": a second
    scale-down must neither scale it nor, in its revert, erase that record."""
    web = add_workload(k8s, "web", replicas=1)
    web["metadata"].update({
        "labels": {"app": "web", RUN_LABEL: "lost-run"},
        "annotations": {EXPIRES: "2999-01-01T00:00:00Z", "chaos.dev/replicas": "3"}})
    k8s.call(lambda c: c.put(DEPLOYMENTS, web))
    path = write_experiment(tmp_path / "scale.json", [{
        "type": "workload.scale_down", "target": {"deployment": {"namespace": "shop",
                                                                 "name": "web"}},
        "with": {"replicas": 0}, "duration": "1s"}])

    code, _, out = run(path, tmp_path)

    assert code == 2, out  # GuardRefused
    assert "still scaled down by chaos run lost-run" in out and "chaos recover" in out
    assert [c for c in k8s.cluster.calls if c.verb == "patch"] == []
    meta = k8s.call(lambda c: c.get(DEPLOYMENTS, "shop", "web"))["metadata"]
    assert meta["labels"][RUN_LABEL] == "lost-run"
    assert meta["annotations"]["chaos.dev/replicas"] == "3"


def test_cordon_marks_the_node_unschedulable_and_uncordons_only_its_own(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    add_node(k8s, "node-1")
    add_node(k8s, "node-2", unschedulable=True)  # cordoned by someone else
    path = write_experiment(tmp_path / "cordon.json", [
        {"type": "node.cordon", "target": {"node": "node-1"}, "duration": "500ms"},
        {"type": "node.cordon", "target": {"node": "node-2"}, "duration": "500ms"}])

    code, doc, out = run(path, tmp_path)

    assert code == 0, out
    patches = [(c.name, c.body) for c in calls(k8s, "patch", "nodes")]
    assert [name for name, _ in patches] == ["node-1", "node-1"]
    assert patches[0][1]["spec"] == {"unschedulable": True}
    assert patches[0][1]["metadata"]["annotations"]["chaos.dev/cordoned"] == "true"
    assert patches[1][1]["spec"] == {"unschedulable": False}
    node1, node2 = (k8s.call(lambda c, n=n: c.get(NODES, None, n)) for n in ("node-1", "node-2"))
    assert not node1["spec"]["unschedulable"] and unmarked(node1["metadata"])
    assert node2["spec"]["unschedulable"] is True
    outcomes = {i["target"]: i["outcome"] for i in doc["injections"]}
    assert outcomes == {"node node-1": "reverted", "node node-2": "nothing"}


def test_taint_adds_one_taint_and_the_revert_removes_exactly_it(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    theirs = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    add_node(k8s, "node-1", taints=[theirs])
    path = write_experiment(tmp_path / "taint.json", [{
        "type": "node.taint", "target": {"node": "node-1"}, "duration": "500ms",
        "with": {"key": "chaos.dev/test", "effect": "NoExecute"}}])

    code, _, out = run(path, tmp_path)

    assert code == 0, out
    ours = {"key": "chaos.dev/test", "value": "true", "effect": "NoExecute"}
    patches = [c.body for c in calls(k8s, "patch", "nodes")]
    assert patches[0]["spec"]["taints"] == [theirs, ours]
    assert patches[0]["metadata"]["annotations"]["chaos.dev/taint"] == \
        "chaos.dev/test=true:NoExecute"
    assert patches[1]["spec"]["taints"] == [theirs]
    node = k8s.call(lambda c: c.get(NODES, None, "node-1"))
    assert node["spec"]["taints"] == [theirs] and unmarked(node["metadata"])


def test_partition_creates_a_deny_all_policy_we_own_and_deletes_it(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    add_workload(k8s, "web", replicas=2)
    wait_ready(k8s, "shop", "web", 2)
    path = write_experiment(tmp_path / "partition.json", [{
        "type": "network.partition", "duration": "500ms",
        "target": {"pods": {"namespace": "shop", "labels": {"app": "web"}}}}])

    code, doc, out = run(path, tmp_path)

    assert code == 0, out
    [created] = calls(k8s, "create", "networkpolicies")
    policy = created.body
    assert policy["spec"] == {"podSelector": {"matchLabels": {"app": "web"}},
                              "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []}
    assert policy["metadata"]["labels"] == {RUN_LABEL: doc["run"]}
    assert EXPIRES in policy["metadata"]["annotations"]
    [deleted] = calls(k8s, "delete", "networkpolicies")
    assert deleted.name == policy["metadata"]["name"] and deleted.namespace == "shop"
    assert k8s.call(lambda c: c.get(NETPOLS, "shop", deleted.name)) is None


def test_drain_evicts_through_the_api_and_waits_for_the_disruption_budget(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    add_node(k8s, "node-1")
    add_node(k8s, "node-2")
    add_workload(k8s, "web", replicas=3, node="node-1")
    wait_ready(k8s, "shop", "web", 3)
    add_pdb(k8s, "web", "shop", {"app": "web"}, min_available=2)
    # replacements land on node-2 from now on, as the scheduler would do for a cordoned node-1
    k8s.call(lambda c: c.objects[DEPLOYMENTS, "shop", "web"].patch(
        {"spec": {"template": {"spec": {"nodeName": "node-2"}}}}))
    for name, ns, owner in (("proxy-x", "shop", "DaemonSet"), ("dns-x", "kube-system", None)):
        k8s.call(lambda c, name=name, ns=ns, owner=owner: c.put(PODS, {
            "metadata": {"name": name, "namespace": ns, "ownerReferences": [
                {"kind": owner, "name": "x"}] if owner else []},
            "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}}))
    path = write_experiment(tmp_path / "drain.json", [{
        "type": "node.drain", "target": {"node": "node-1"}, "duration": "5s",
        "with": {"retry_for": "4s"}}], kubernetes={"namespaces": ["shop"]})

    code, doc, out = run(path, tmp_path)

    assert code == 0, out
    spec = doc["injections"][0]["revert_spec"]
    assert len(spec["evicted"]) == 3 and spec["blocked_by_pdb"] == []
    assert sorted(spec["skipped"]) == [
        "kube-system/dns-x (namespace kube-system may not be touched)",
        "shop/proxy-x (DaemonSet pod)"]
    evictions = calls(k8s, "create", "pods/eviction")
    assert {c.namespace for c in evictions} == {"shop"}
    assert len(evictions) > 3, "no eviction was refused by the PodDisruptionBudget"
    assert all(c.body["kind"] == "Eviction" for c in evictions)
    node = k8s.call(lambda c: c.get(NODES, None, "node-1"))
    assert not node["spec"]["unschedulable"] and unmarked(node["metadata"])
    wait_ready(k8s, "shop", "web", 3)
    web = ready_pods(k8s, "shop", "web")
    assert len(web) == 3 and {p["spec"]["nodeName"] for p in web} == {"node-2"}


def test_a_taint_that_was_there_before_is_refused_and_left_in_place(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    theirs = {"key": "chaos.dev/test", "value": "true", "effect": "NoExecute"}
    add_node(k8s, "node-1", taints=[theirs])
    path = write_experiment(tmp_path / "taint.json", [{
        "type": "node.taint", "target": {"node": "node-1"}, "duration": "500ms",
        "with": {"key": "chaos.dev/test", "effect": "NoExecute"}}])

    code, _, out = run(path, tmp_path)

    assert code in (2, 4), out
    assert "already has a chaos.dev/test:NoExecute taint" in out
    assert calls(k8s, "patch", "nodes") == []
    node = k8s.call(lambda c: c.get(NODES, None, "node-1"))
    assert node["spec"]["taints"] == [theirs]
