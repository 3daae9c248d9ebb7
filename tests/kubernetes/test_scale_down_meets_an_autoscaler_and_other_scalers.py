"""workload.scale_down against what else scales a workload: a HorizontalPodAutoscaler (the
emulator's controller puts the replicas back on every sync, as kube-controller-manager's does,
except for a target at 0) and a person who scales it during the fault. Observed from the
emulator: the scale calls it received and the replica counts the workload went through."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.conftest import chaos_cmd, run_chaos
from tests.support.kubernetes.cluster_rules import HPAS
from tests.kubernetes.conftest import add_workload, calls, wait_ready, write_experiment
from tests.support.kubernetes.emulator import DEPLOYMENTS, Emulator


def add_hpa(k8s: Emulator, target: str, low: int, high: int, desired: int) -> None:
    k8s.call(lambda c: c.put(HPAS, {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": f"{target}-hpa", "namespace": "shop"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": target},
                 "minReplicas": low, "maxReplicas": high},
        "status": {"desiredReplicas": desired}}))


def replicas(k8s: Emulator) -> int:
    return int(k8s.call(lambda c: c.get(DEPLOYMENTS, "shop", "web"))["spec"]["replicas"])


def history(k8s: Emulator) -> list[int]:
    """The replica counts the workload went through, each change once."""
    counts = k8s.call(lambda c: [v["spec"]["replicas"] for v in
                                 c.objects[DEPLOYMENTS, "shop", "web"].history if v])
    return [n for i, n in enumerate(counts) if i == 0 or counts[i - 1] != n]


def wait_for(check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def scale_down(tmp_path: Path, to: int, duration: str = "2s") -> Path:
    return write_experiment(tmp_path / "scale.json", [{
        "type": "workload.scale_down", "target": {"deployment": {"namespace": "shop",
                                                                  "name": "web"}},
        "with": {"replicas": to}, "duration": duration}])


def test_the_emulated_autoscaler_puts_a_scaled_down_workload_back(k8s: Emulator) -> None:
    """The behaviour the adapter must meet: kubectl scale --replicas=1 does not hold."""
    add_workload(k8s, "web", replicas=3)
    add_hpa(k8s, "web", 2, 5, desired=3)
    k8s.call(lambda c: c.objects[DEPLOYMENTS, "shop", "web"].patch({"spec": {"replicas": 1}}))
    wait_for(lambda: replicas(k8s) == 3)


def test_a_scale_down_an_autoscaler_would_undo_is_refused(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    add_workload(k8s, "web", replicas=3)
    add_hpa(k8s, "web", 2, 5, desired=3)

    result = run_chaos("run", str(scale_down(tmp_path, 1)), "-q")

    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "HorizontalPodAutoscaler web-hpa (2..5)" in out and "replicas: 0" in out, out
    assert calls(k8s, "patch", "deployments/scale") == []
    marked = [c for c in calls(k8s, "patch", "deployments")
              if any(v is not None for v in c.body["metadata"].get("annotations", {}).values())]
    assert marked == []
    assert set(history(k8s)) == {3}


def test_scaled_to_zero_it_holds_under_the_autoscaler_and_is_handed_back(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    add_workload(k8s, "web", replicas=3)
    wait_ready(k8s, "shop", "web", 3)
    add_hpa(k8s, "web", 2, 5, desired=3)
    journal = tmp_path / "journal.json"

    result = run_chaos("run", str(scale_down(tmp_path, 0)), "--journal", str(journal), "-q")

    assert result.returncode == 0, result.stdout + result.stderr
    assert [c.body["spec"]["replicas"] for c in calls(k8s, "patch", "deployments/scale")] == \
        [0, 3]
    assert history(k8s) == [3, 0, 3]  # nothing but our revert raised it
    doc = json.loads(journal.read_text())
    assert doc["injections"][0]["outcome"] == "reverted"
    assert doc["injections"][0]["revert_spec"]["autoscalers"] == ["web-hpa (2..5)"]
    wait_ready(k8s, "shop", "web", 3)


def test_a_count_someone_changed_during_the_fault_is_not_overwritten(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    add_workload(k8s, "web", replicas=3)
    wait_ready(k8s, "shop", "web", 3)
    journal = tmp_path / "journal.json"
    proc = subprocess.Popen(chaos_cmd("run", str(scale_down(tmp_path, 1, "4s")), "--journal",
                                      str(journal), "-q"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: replicas(k8s) == 1 or proc.poll() is not None)
        # someone scales it up for their own reasons while the fault holds
        k8s.call(lambda c: c.objects[DEPLOYMENTS, "shop", "web"].patch(
            {"spec": {"replicas": 5}}))
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)  # an unwaited Popen warns in a later test
    assert proc.returncode == 0, out
    assert replicas(k8s) == 5
    assert [c.body["spec"]["replicas"] for c in calls(k8s, "patch", "deployments/scale")] == [1]
    doc = json.loads(journal.read_text())
    assert doc["injections"][0]["outcome"] == "nothing"
    meta = k8s.call(lambda c: c.get(DEPLOYMENTS, "shop", "web"))["metadata"]
    assert not any(k.startswith("chaos.dev/") for k in meta.get("annotations") or {})
