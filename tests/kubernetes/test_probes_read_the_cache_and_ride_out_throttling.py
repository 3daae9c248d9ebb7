"""The pods and deployment probes as a busy API server sees them: every sample is a LIST that
names what it wants (label selector, metadata.name) and is served from the watch cache
(resourceVersion=0), never a consistent read through etcd; a 429 without Retry-After is retried
with backoff, and throttling that outlasts the retries is a failed sample, not an aborted run.
Observed from the emulator's record of the calls and its throttling counter."""

from __future__ import annotations

import asyncio

from chaos.model.experiment import ProbeSpec, frozen
from chaos.slo.probes import Probe
from tests.support.kubernetes.cluster_rules import etcd_reads
from tests.kubernetes.conftest import add_workload, wait_ready
from tests.support.kubernetes.emulator import Emulator


def sample(kind: str, spec: dict[str, object]) -> tuple[bool, str]:
    probe = Probe.from_spec(ProbeSpec("p", kind, frozen(spec), kubernetes=frozen(
        {"namespaces": ("shop",)})))
    result = asyncio.run(probe.sample())
    return result.ok, result.detail


def test_each_sample_lists_only_what_it_counts_from_the_watch_cache(k8s: Emulator) -> None:
    add_workload(k8s, "web", replicas=2)
    add_workload(k8s, "db", replicas=1)
    wait_ready(k8s, "shop", "web", 2)
    k8s.cluster.calls.clear()

    assert sample("pods", {"namespace": "shop", "labels": {"app": "web"}, "min_ready": 2})[0]
    assert sample("deployment", {"namespace": "shop", "name": "web"}) == (
        True, "2/2 available (want 2)")
    assert sample("deployment", {"namespace": "shop", "name": "gone"}) == (
        False, "deployment shop/gone not found")

    made = [(c.verb, c.resource, dict(c.query)) for c in k8s.cluster.calls]
    assert [(verb, resource) for verb, resource, _ in made] == [
        ("list", "pods"), ("list", "deployments"), ("list", "deployments")]
    assert made[0][2]["labelSelector"] == "app=web"
    assert [q["fieldSelector"] for _, _, q in made[1:]] == ["metadata.name=web",
                                                             "metadata.name=gone"]
    assert etcd_reads(k8s.cluster) == []


def test_a_429_without_retry_after_is_retried_then_a_failed_sample(k8s: Emulator) -> None:
    add_workload(k8s, "web", replicas=1)
    wait_ready(k8s, "shop", "web", 1)
    spec = {"namespace": "shop", "labels": {"app": "web"}, "timeout": 20.0}

    k8s.cluster.rules.throttle_reads = 2
    assert sample("pods", spec) == (True, "1/1 ready (want 1)")
    assert k8s.cluster.rules.throttle_reads == 0

    k8s.cluster.rules.throttle_reads = 100
    ok, detail = sample("pods", spec)
    assert not ok and "429" in detail, detail
    assert k8s.cluster.rules.throttle_reads == 100 - 4  # the call and its three retries
