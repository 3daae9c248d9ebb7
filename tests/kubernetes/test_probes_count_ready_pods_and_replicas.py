"""The pods and deployment probes answer from the cluster: ready pods for a selector and the
available replicas of a workload, through the same call boundary as the faults."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chaos.model.experiment import ProbeSpec, frozen
from chaos.slo.probes import Probe
from tests.kubernetes.conftest import add_workload, wait_ready
from tests.support.kubernetes.emulator import DEPLOYMENTS, Emulator


def sample(kind: str, spec: dict[str, object]) -> tuple[bool, str]:
    probe = Probe.from_spec(ProbeSpec("p", kind, frozen(spec), kubernetes=frozen(
        {"namespaces": ("shop",)})))
    result = asyncio.run(probe.sample())
    return result.ok, result.detail


def test_pods_probe_counts_ready_pods_of_a_selector(k8s: Emulator) -> None:
    add_workload(k8s, "web", replicas=3)
    add_workload(k8s, "db", replicas=1)
    wait_ready(k8s, "shop", "web", 3)
    assert sample("pods", {"namespace": "shop", "labels": {"app": "web"}, "min_ready": 3}) == (
        True, "3/3 ready (want 3)")
    assert sample("pods", {"namespace": "shop", "labels": {"app": "db"}, "min_ready": 2})[0] is False
    assert sample("pods", {"namespace": "shop", "labels": {"app": "none"}}) == (
        False, "0/0 ready (want 1)")


def test_deployment_probe_compares_available_with_desired_replicas(k8s: Emulator,
                                                                   tmp_path: Path) -> None:
    add_workload(k8s, "web", replicas=2)
    wait_ready(k8s, "shop", "web", 2)
    assert sample("deployment", {"namespace": "shop", "name": "web"}) == (
        True, "2/2 available (want 2)")
    k8s.call(lambda c: c.objects[DEPLOYMENTS, "shop", "web"].patch({"spec": {"replicas": 4}}))
    ok, detail = sample("deployment", {"namespace": "shop", "name": "web"})
    assert not ok and detail.endswith("/4 available (want 4)")
    assert sample("deployment", {"namespace": "shop", "name": "web", "min_available": 2})[0]
    assert sample("deployment", {"namespace": "shop", "name": "gone"}) == (
        False, "deployment shop/gone not found")
