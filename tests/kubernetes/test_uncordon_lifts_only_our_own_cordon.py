"""node.cordon's revert lifts only a cordon that is still ours. The emulator keeps
metadata.managedFields as the API server does: whoever last changed spec.unschedulable owns it.
Someone who uncordons and cordons again during the fault (`kubectl cordon` sends
fieldManager=kubectl-cordon) owns the cordon, and the node must stay cordoned after our revert.
Observed from outside: the node as the emulator holds it, and the patches it received."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.conftest import chaos_cmd
from tests.kubernetes.conftest import add_node, calls, write_experiment
from tests.support.kubernetes.emulator import NODES, Emulator


def node(k8s: Emulator) -> dict:
    return k8s.call(lambda c: c.get(NODES, None, "node-1"))


def kubectl_patch(k8s: Emulator, unschedulable: bool) -> None:
    """What `kubectl cordon`/`uncordon` sends (its own field manager), over HTTP."""
    request = urllib.request.Request(
        f"{k8s.url}/api/v1/nodes/node-1?fieldManager=kubectl-cordon", method="PATCH",
        data=json.dumps({"spec": {"unschedulable": unschedulable}}).encode(),
        headers={"Content-Type": "application/merge-patch+json",
                 "User-Agent": "kubectl/v1.31.0 (linux/amd64) kubernetes/abc"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def run_cordon(k8s: Emulator, tmp_path: Path, during: object = None) -> tuple[int, dict, str]:
    path = write_experiment(tmp_path / "cordon.json", [
        {"type": "node.cordon", "target": {"node": "node-1"}, "duration": "3s"}])
    journal = tmp_path / "journal.json"
    proc = subprocess.Popen(chaos_cmd("run", str(path), "--journal", str(journal), "-q"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not node(k8s)["spec"].get("unschedulable") and proc.poll() is None:
            assert time.monotonic() < deadline, "the node was never cordoned"
            time.sleep(0.05)
        if during is not None:
            during()  # type: ignore[operator]
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)  # an unwaited Popen warns in a later test
    return proc.returncode, json.loads(journal.read_text()), out


def test_a_cordon_someone_set_again_during_the_fault_stays(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    add_node(k8s, "node-1")

    def maintenance() -> None:  # an operator uncordons, then cordons for their own reasons
        kubectl_patch(k8s, False)
        kubectl_patch(k8s, True)

    code, doc, out = run_cordon(k8s, tmp_path, maintenance)

    assert code == 0, out
    after = node(k8s)
    assert after["spec"]["unschedulable"] is True
    owners = [m["manager"] for m in after["metadata"]["managedFields"]]
    assert owners == ["kubectl-cordon"]
    assert not any(k.startswith("chaos.dev/") for k in after["metadata"].get("annotations")
                   or {})
    assert doc["injections"][0]["outcome"] == "nothing"
    ours = [c for c in calls(k8s, "patch", "nodes") if dict(c.query).get("fieldManager")
            == "chaos"]
    assert [c.body.get("spec") for c in ours] == [{"unschedulable": True}, None]


def test_our_own_cordon_is_lifted(k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    add_node(k8s, "node-1")

    code, doc, out = run_cordon(k8s, tmp_path)

    assert code == 0, out
    assert node(k8s)["spec"]["unschedulable"] is False
    assert doc["injections"][0]["outcome"] == "reverted"
