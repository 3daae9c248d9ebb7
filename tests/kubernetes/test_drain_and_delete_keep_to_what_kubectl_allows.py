"""node.drain and pod.delete against the refusals a real API server and kubectl make: the
Eviction API's 500 (two budgets) and 403 (a misconfigured budget) refuse one pod and the drain
goes on; pods an eviction would lose for good are refused unless `force`; the runner's own pod
is never evicted; `grace_period: 0s` is a force delete only when asked for. Observed from the
emulator: the calls it received, the pods left, the node's state after the revert."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_chaos
from tests.kubernetes.conftest import (
    add_node,
    add_pdb,
    add_pod,
    add_workload,
    calls,
    wait_ready,
    write_experiment,
)
from tests.support.kubernetes.emulator import NODES, PDBS, Emulator


def run(path: Path, tmp_path: Path, env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    journal = tmp_path / "journal.json"
    result = run_chaos("run", str(path), "--journal", str(journal), "-q", env=env)
    doc = json.loads(journal.read_text()) if journal.exists() else {}
    return result.returncode, doc, result.stdout + result.stderr


def drain(tmp_path: Path, **params: object) -> Path:
    return write_experiment(tmp_path / "drain.json", [{
        "type": "node.drain", "target": {"node": "node-1"}, "duration": "2s",
        "with": {"retry_for": "1s", **params}}])


def evicted_names(k8s: Emulator) -> set[str]:
    return {c.name for c in calls(k8s, "create", "pods/eviction")}


def test_a_pod_the_eviction_api_refuses_is_recorded_and_the_drain_goes_on(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    add_node(k8s, "node-1")
    for name in ("web", "api", "db"):
        add_pod(k8s, name)
    add_pdb(k8s, "web-a", "shop", {"app": "web"}, min_available=0)
    add_pdb(k8s, "web-b", "shop", {"app": "web"}, min_available=0)
    misconfigured = add_pdb(k8s, "api", "shop", {"app": "api"}, min_available=0)
    misconfigured["status"] = {"disruptionsAllowed": -1}
    k8s.call(lambda c: c.put(PDBS, misconfigured))

    code, doc, out = run(drain(tmp_path, grace_period="0s"), tmp_path)

    assert code == 0, out
    spec = doc["injections"][0]["revert_spec"]
    assert spec["evicted"] == ["shop/db"], (spec, out)
    assert {c.body["deleteOptions"]["gracePeriodSeconds"] for c in
            calls(k8s, "create", "pods/eviction")} == {1}  # 0s without force: 1s
    refused = sorted(spec["refused"])
    assert len(refused) == 2, refused
    assert refused[0].startswith("shop/api (") and "PodDisruptionBudget api" in refused[0]
    assert "disruptions allowed is negative" in refused[0]
    assert refused[1].startswith("shop/web (") and "more than one PodDisruptionBudget" in \
        refused[1]
    assert "grant it" not in out and "403" not in doc["injections"][0].get("error", "")
    assert evicted_names(k8s) == {"web", "api", "db"}
    alive = {p["metadata"]["name"] for p in k8s.call(lambda c: c.pods("shop"))}
    assert alive == {"web", "api"}
    node = k8s.call(lambda c: c.get(NODES, None, "node-1"))
    assert not node["spec"]["unschedulable"]


def test_pods_an_eviction_would_lose_for_good_are_refused_before_the_node_is_touched(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    add_node(k8s, "node-1")
    add_pod(k8s, "bare", owner=None)
    add_pod(k8s, "cache", volumes=[{"name": "scratch", "emptyDir": {}}])
    add_pod(k8s, "web")

    code, _, out = run(drain(tmp_path), tmp_path)

    assert code == 2, out
    assert "would delete 2 pods for good" in out, out
    assert "shop/bare (no controller" in out and "shop/cache (emptyDir data" in out, out
    assert "force: true" in out, out
    assert calls(k8s, "patch", "nodes") == [] and evicted_names(k8s) == set()
    assert len(k8s.call(lambda c: c.pods("shop"))) == 3


def test_with_force_they_are_evicted_too(k8s: Emulator, state_dir: Path,
                                         tmp_path: Path) -> None:
    add_node(k8s, "node-1")
    add_pod(k8s, "bare", owner=None)
    add_pod(k8s, "cache", volumes=[{"name": "scratch", "emptyDir": {}}])

    code, doc, out = run(drain(tmp_path, force=True, grace_period="0s"), tmp_path)

    assert code == 0, out
    assert {c.body["deleteOptions"]["gracePeriodSeconds"] for c in
            calls(k8s, "create", "pods/eviction")} == {0}
    assert sorted(doc["injections"][0]["revert_spec"]["evicted"]) == ["shop/bare",
                                                                      "shop/cache"]
    assert k8s.call(lambda c: c.pods("shop")) == []


def test_the_runners_own_pod_is_never_evicted(k8s: Emulator, state_dir: Path,
                                              tmp_path: Path) -> None:
    add_node(k8s, "node-1")
    add_pod(k8s, "chaos-experiment-x7k2p", owner="Job")
    add_pod(k8s, "web")

    code, doc, out = run(drain(tmp_path), tmp_path, env={
        "CHAOS_POD_NAME": "chaos-experiment-x7k2p", "CHAOS_POD_NAMESPACE": "shop"})

    assert code == 0, out
    spec = doc["injections"][0]["revert_spec"]
    assert spec["evicted"] == ["shop/web"]
    assert spec["skipped"] == ["shop/chaos-experiment-x7k2p (the chaos runner's own pod)"]
    assert evicted_names(k8s) == {"web"}


def test_grace_period_zero_is_a_force_delete_only_with_force(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    """Without force, 0s goes out as 1s (kubectl's rule; the default is covered by
    test_pod_delete_is_seen_and_recovered.py); with force the API deletes the object at once."""
    add_workload(k8s, "web", replicas=2, kind="statefulset")
    wait_ready(k8s, "shop", "web", 2)
    faults = [{"type": "pod.delete", "target": {"pods": {"namespace": "shop",
                                                          "labels": {"app": "web"}},
                                                 "count": 1},
               "with": {"grace_period": "0s", **extra}} for extra in ({}, {"force": True})]
    for i, fault in enumerate(faults):
        code, doc, out = run(write_experiment(tmp_path / f"delete{i}.json", [fault]), tmp_path)
        assert code == 0, out
        wait_ready(k8s, "shop", "web", 2)

    graces = [c.body["gracePeriodSeconds"] for c in calls(k8s, "delete", "pods")]
    assert graces == [1, 0]
    assert len(k8s.cluster.rules.force_deleted) == 1
