"""pod.delete through `chaos run`: the "at least 2 ready pods" hypothesis goes false when two
of three pods are deleted, the Deployment's replacements become ready, and the journal shows the
failing samples, the recovery and the recovery time. The emulator's log shows the deletes, each
with the UID precondition of the pod that was chosen."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import EXPERIMENTS, run_chaos
from tests.kubernetes.conftest import add_node, add_workload, ready_pods, wait_ready
from tests.support.kubernetes.emulator import Emulator


def test_ready_pods_drop_and_recover_and_the_journal_shows_both(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    k8s.cluster.recreate_delay = k8s.cluster.ready_delay = 0.8
    add_node(k8s, "node-1")
    add_workload(k8s, "web", namespace="shop", replicas=3)
    wait_ready(k8s, "shop", "web", 3)
    before = {p["metadata"]["uid"]: p["metadata"]["name"] for p in ready_pods(k8s, "shop", "web")}
    journal = tmp_path / "journal.json"

    result = run_chaos("run", str(EXPERIMENTS / "pod-delete.yaml"), "--var", "namespace=shop",
                       "--journal", str(journal), "--seed", "7", "-q")

    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(journal.read_text())
    web = [s for s in doc["series"] if s["probe"] == "web"]
    assert any(s["errors"] for s in web), "the hypothesis never went false"
    assert web[-1]["errors"] == 0, "the hypothesis did not hold again at the end"
    assert doc["seed"] == 7
    assert doc["recovery"]["seconds"] is not None and doc["recovery"]["seconds"] > 0.5
    deletes = [c for c in k8s.cluster.calls if (c.verb, c.resource) == ("delete", "pods")]
    assert len(deletes) == 2
    assert {c.name for c in deletes} <= set(before.values())
    for call in deletes:
        uid = call.body["preconditions"]["uid"]
        assert before[uid] == call.name
        assert call.body["gracePeriodSeconds"] == 1
    assert k8s.cluster.rules.force_deleted == []
    injected = [i for i in doc["injections"]]
    assert len(injected) == 2
    assert all(i["revert_spec"]["recreated_by"] == "ReplicaSet/web" for i in injected)
    assert all(i["outcome"] == "nothing" for i in injected)
    # the watchdog and `chaos recover` reconnect from the spec: a path and a context, no secret
    assert injected[0]["revert_spec"]["connection"] == {
        "kubeconfig": str(k8s.kubeconfig), "context": "emulator", "in_cluster": False}
    assert "not-a-secret" not in journal.read_text()
    wait_ready(k8s, "shop", "web", 3)
    now = {p["metadata"]["uid"] for p in ready_pods(k8s, "shop", "web")}
    deleted = {c.body["preconditions"]["uid"] for c in deletes}
    assert len(now) == 3 and not now & deleted, "the deleted pods were not replaced"

def test_the_same_seed_deletes_the_same_pods(k8s: Emulator, state_dir: Path,
                                             tmp_path: Path) -> None:
    add_workload(k8s, "web", namespace="shop", replicas=5)
    wait_ready(k8s, "shop", "web", 5)
    plans = [run_chaos("run", str(EXPERIMENTS / "pod-delete.yaml"), "--var", "namespace=shop",
                       "--dry-run", "--seed", str(seed)) for seed in (3, 3, 4)]
    assert all(p.returncode == 0 for p in plans), plans[0].stdout + plans[0].stderr
    assert plans[0].stdout == plans[1].stdout
    assert "pod shop/web-" in plans[0].stdout
    assert not [c for c in k8s.cluster.calls if c.verb != "list"], "a dry run changed something"
