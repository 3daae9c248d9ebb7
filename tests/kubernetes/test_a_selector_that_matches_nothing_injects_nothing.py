"""A Kubernetes selector that matches nothing is refused when the fault starts: exit 2, the
selector in the message and the journal, nothing injected, and the emulator received no call
that changes anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_chaos
from tests.kubernetes.conftest import add_node, add_workload, wait_ready, write_experiment
from tests.support.kubernetes.emulator import Emulator

WRITES = ("create", "patch", "update", "delete", "deletecollection")

CASES: dict[str, tuple[dict[str, Any], str]] = {
    "pods by labels": ({"type": "pod.delete",
                        "target": {"pods": {"namespace": "shop", "labels": {"app": "nope"}}}},
                       "no running pod matches pods in shop (labels=app=nope)"),
    "pods by name": ({"type": "resource.cpu", "duration": "2s", "with": {"load": "50%"},
                      "target": {"pods": {"namespace": "shop", "names": ["web-nope"]}}},
                     "no running pod matches pods in shop (names=web-nope)"),
    "deployment": ({"type": "workload.scale_down", "duration": "2s", "with": {"replicas": 1},
                    "target": {"deployment": {"namespace": "shop", "name": "nope"}}},
                   "no deployment in shop matches name=nope"),
    "node": ({"type": "node.cordon", "duration": "2s",
              "target": {"node": {"labels": {"pool": "nope"}}}},
             "no node matches labels=pool=nope"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_selector_that_matches_nothing_is_refused_and_changes_nothing(
        case: str, k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    add_node(k8s, "node-1")
    add_workload(k8s, "web", replicas=2)
    wait_ready(k8s, "shop", "web", 2)
    fault, needle = CASES[case]
    path = write_experiment(tmp_path / "nothing.json", [fault])
    journal_path = tmp_path / "journal.json"

    result = run_chaos("run", str(path), "--journal", str(journal_path))

    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert needle in out and "Traceback" not in out, out
    journal = json.loads(journal_path.read_text())
    assert needle in journal["reason"] and journal["verdict"] == "error"
    assert journal["injections"] == []
    writes = [c for c in k8s.call(lambda c: list(c.calls)) if c.verb in WRITES]
    assert writes == [], writes
