"""Revert specs are typed records with a version: they round-trip through the ledger's JSON,
specs written before versions existed (no `version`: 1) are still read and reverted, and a
version this chaos does not know is refused with the adapter and the version named."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psutil
import pytest

from chaos.adapters.base import RevertSpec, TargetRef
from chaos.adapters.container.disk import ContainerDiskAdapter, DiskSpec
from chaos.adapters.container.lifecycle import ContainerLifecycleAdapter, LifecycleSpec
from chaos.adapters.container.network import ContainerNetworkAdapter, ContainerNetworkSpec
from chaos.adapters.local.kernel import InterfaceAdapter, KernelSpec, NetnsAdapter
from chaos.adapters.kubernetes.ephemeral import PodNetworkAdapter
from chaos.adapters.kubernetes.ephemeral_kill import ContainerKillAdapter, KillSpec
from chaos.adapters.kubernetes.nodes import CordonAdapter, DrainAdapter, NodeSpec, TaintAdapter
from chaos.adapters.kubernetes.pods import PartitionAdapter, PodDeleteAdapter, PartitionSpec
from chaos.adapters.kubernetes.load_job import LoadJobAdapter, LoadJobSpec
from chaos.adapters.kubernetes.pods import PodDeleteSpec
from chaos.adapters.kubernetes.workloads import ScaleDownAdapter, ScaleSpec
from chaos.adapters.kubernetes.ephemeral_spec import InPodSpec, stop_container
from chaos.adapters.local.clock import ClockAdapter, ClockSpec
from chaos.adapters.local.process import ProcessAdapter, ProcessSpec
from chaos.adapters.local.proxy_adapter import ProxyAdapter, ProxySpec
from chaos.adapters.local.resource import HostResourceAdapter, ResourceSpec
from chaos.adapters.local.service import ServiceAdapter
from chaos.errors import RevertFailed
from chaos.model.experiment import FaultSpec, Target, frozen

CONNECTION = {"kubeconfig": "/nonexistent", "context": None}
CONTAINER = {"id": "c0ffee", "name": "web", "started_at": "2026-01-01T00:00:00Z", "pid": 1,
             "create_time": 1.0}
# Literals exactly as the code before versioned specs wrote them into ledgers.
LEGACY: dict[str, tuple[type[RevertSpec], dict[str, Any]]] = {
    "kernel-tc": (KernelSpec, {"adapter": "local.kernel", "netns": None, "device": "eth0",
                               "tc": {"handle": "ca05:", "original": {"kind": "noqueue",
                                                                      "handle": "0:"}}}),
    "kernel-nft": (KernelSpec, {"adapter": "local.kernel.netns", "netns": "ns1",
                                "device": "veth0",
                                "nft": {"family": "inet", "table": "chaos_0123456789ab"}}),
    "kernel-ipt": (KernelSpec, {"adapter": "local.kernel", "netns": None, "device": "eth0",
                                "ipt": {"INPUT": "CHAOS-0123456789-I",
                                        "OUTPUT": "CHAOS-0123456789-O"}}),
    "container-network": (ContainerNetworkSpec, {
        "adapter": "container.network", "netns": "/proc/1/ns/net", "device": "eth0",
        "nft": {"family": "inet", "table": "chaos_0123456789ab"},
        "docker_host": "unix:///run/docker.sock", "container": CONTAINER}),
    "resource": (ResourceSpec, {"adapter": "local.resource", "fault": "resource.cpu",
                                "tag": "0123456789abcdef",
                                "workers": [{"pid": 4242, "create_time": 1795754983.28}],
                                "files": []}),
    "process-suspend": (ProcessSpec, {"adapter": "local.process", "action": "resume",
                                      "processes": [{"pid": 7264,
                                                     "create_time": 1795754983.28}]}),
    "process-kill": (ProcessSpec, {"adapter": "local.process", "action": "none"}),
    "service-restart": (ProcessSpec, {"adapter": "local.service", "action": "none"}),
    "container-pause": (LifecycleSpec, {"adapter": "container.engine",
                                        "fault": "container.pause", "revert": "unpause",
                                        "docker_host": "unix:///run/docker.sock",
                                        "container": CONTAINER}),
    "container-kill": (LifecycleSpec, {"adapter": "container.engine",
                                       "fault": "container.kill", "revert": None,
                                       "docker_host": "unix:///run/docker.sock",
                                       "container": CONTAINER}),
    "proxy": (ProxySpec, {"adapter": "local.proxy", "listen": "127.0.0.1:16379",
                          "upstream": "127.0.0.1:6379", "protocol": "tcp",
                          "control": "/tmp/chaos-proxy-0/3f2a.sock", "upstream_tls": False,
                          "toxic": "latency-5d0c1e9a7b",
                          "owned": {"pid": 4242, "create_time": 1795754983.28}}),
    "clock": (ClockSpec, {"adapter": "local.clock", "file": "/tmp/chaos-clock-x/offset",
                          "pid": 4242, "create_time": 1795754983.28}),
    "container-disk": (DiskSpec, {"adapter": "container.disk", "fault": "resource.disk_fill",
                                  "container": {**CONTAINER, "docker_host": "unix:///x.sock"},
                                  "file": "/tmp/chaos-fill-0123456789ab.bin"}),
    "in-pod": (InPodSpec, {"adapter": "kubernetes.pod.network", "namespace": "shop",
                           "pod": "web-1", "uid": "u-1", "id": "0a1b2c3d4e5f",
                           "fault": "network.loss", "name": "loss", "target": {"device": "eth0"},
                           "with": {"percent": 0.3}, "deadline": 1795754983.28,
                           "run_id": "run-1", "image": "chaos:1", "pull_policy": "IfNotPresent",
                           "container": "chaos-hold-0a1b2c3d4e5f", "action": "stop",
                           "connection": CONNECTION}),
    "pod-container-kill": (KillSpec, {"adapter": "kubernetes.container.kill", "action": "none",
                                      "connection": CONNECTION, "namespace": "shop",
                                      "pod": "web-1", "uid": "u-1", "container": "web",
                                      "signal": "TERM", "id": "0a1b2c3d4e5f", "via": "exec",
                                      "result": "killed: sent SIGTERM to pid 1 (nginx) through "
                                                "pods/exec"}),
    "pod-container-kill-planned": (KillSpec, {"adapter": "kubernetes.container.kill",
                                              "action": "none", "connection": CONNECTION,
                                              "namespace": "shop", "pod": "web-1", "uid": "u-1",
                                              "container": "web", "signal": "INT",
                                              "id": "0a1b2c3d4e5f"}),
    "pod-delete": (PodDeleteSpec, {"adapter": "kubernetes.pod", "action": "none",
                                   "connection": CONNECTION,
                                   "pod": {"namespace": "shop", "name": "web-1", "uid": "u-1"},
                                   "recreated_by": "ReplicaSet/web", "grace_period": None}),
    "partition": (PartitionSpec, {"adapter": "kubernetes.partition", "action": "delete",
                                  "connection": CONNECTION, "namespace": "shop",
                                  "name": "chaos-partition-0123456789",
                                  "verified": "new connections to 2 pods on port 80 failed"}),
    "load-job": (LoadJobSpec, {"adapter": "kubernetes.load-job", "action": "delete",
                               "connection": CONNECTION, "namespace": "load",
                               "name": "chaos-load-20261204t000000-abcdef"}),
    "cordon": (NodeSpec, {"adapter": "kubernetes.cordon", "action": "uncordon",
                          "connection": CONNECTION, "node": "n1", "uid": "u-n1"}),
    "drain": (NodeSpec, {"adapter": "kubernetes.drain", "action": "uncordon",
                         "connection": CONNECTION, "node": "n1", "uid": "u-n1",
                         "evicted": ["shop/web-1"], "blocked_by_pdb": [], "refused": [],
                         "skipped": ["kube-system/ds-1 (DaemonSet)"]}),
    "taint": (NodeSpec, {"adapter": "kubernetes.taint", "action": "untaint",
                         "connection": CONNECTION, "node": "n1", "uid": "u-n1",
                         "taint": {"key": "chaos.dev/fault", "value": "true",
                                   "effect": "NoSchedule"}}),
    "scale": (ScaleSpec, {"adapter": "kubernetes.scale", "action": "restore",
                          "connection": CONNECTION, "marked_by": None,
                          "resource": "deployments", "namespace": "shop", "name": "web",
                          "uid": "u-d", "replicas": 3, "scaled_to": 0,
                          "autoscalers": ["web-hpa (2..5)"]}),
}
ADAPTERS = [PodDeleteAdapter(), PartitionAdapter(), CordonAdapter(), DrainAdapter(),
            TaintAdapter(), ScaleDownAdapter(), PodNetworkAdapter(), ProxyAdapter(), ClockAdapter(), ContainerDiskAdapter(), InterfaceAdapter(), NetnsAdapter(), ContainerNetworkAdapter(), HostResourceAdapter(),
            ProcessAdapter(), ServiceAdapter(), ContainerLifecycleAdapter(),
            ContainerKillAdapter(), LoadJobAdapter()]
SPEC_OF = {"local.kernel": "kernel-tc", "local.kernel.netns": "kernel-nft",
           "container.network": "container-network", "local.resource": "resource",
           "local.process": "process-suspend", "local.service": "service-restart",
           "container.engine": "container-pause", "local.proxy": "proxy",
           "local.clock": "clock", "container.disk": "container-disk",
           "kubernetes.pod.network": "in-pod", "kubernetes.pod": "pod-delete",
           "kubernetes.partition": "partition", "kubernetes.cordon": "cordon",
           "kubernetes.drain": "drain", "kubernetes.taint": "taint",
           "kubernetes.scale": "scale", "kubernetes.container.kill": "pod-container-kill",
           "kubernetes.load-job": "load-job"}


@pytest.mark.parametrize("case", sorted(LEGACY))
def test_a_legacy_spec_reads_as_version_1_and_writes_back_the_same_with_a_version(
        case: str) -> None:
    cls, legacy = LEGACY[case]
    typed = cls.from_json(json.loads(json.dumps(legacy)))
    assert typed.to_json() == {**legacy, "version": 1}
    assert cls.from_json(json.loads(json.dumps(typed.to_json()))) == typed


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
@pytest.mark.parametrize("version", [2, 99, "1", 0])
def test_a_version_this_chaos_does_not_read_is_refused_naming_adapter_and_version(
        adapter: Any, version: object) -> None:
    _, legacy = LEGACY[SPEC_OF[adapter.name]]
    with pytest.raises(RevertFailed) as error:
        asyncio.run(adapter.revert({**legacy, "adapter": adapter.name, "version": version}))
    assert adapter.name in str(error.value) and repr(version) in str(error.value)
    assert "chaos release" in error.value.hint


def fault(fault_type: str, kind: str, selector: Mapping[str, Any],
          params: Mapping[str, Any] | None = None) -> FaultSpec:
    return FaultSpec(index=0, name="f", type=fault_type, target=Target(kind, frozen(selector)),
                     params=frozen(params or {}), start=0.0, duration=5.0)


def test_prepare_writes_the_current_version_and_the_spec_reads_back() -> None:
    target = TargetRef("interface", "eth0", {"netns": None, "device": "eth0"}, "k")
    spec = InterfaceAdapter().prepare(fault("network.latency", "interface", {"device": "eth0"},
                                            {"delay": 0.1}), target)
    assert spec == {"adapter": "local.kernel", "version": 1, "netns": None, "device": "eth0",
                    "tc": {"handle": "ca05:"}}
    assert KernelSpec.from_json(spec).to_json() == spec


def test_correlated_loss_is_held_by_netem_as_documented() -> None:
    target = TargetRef("interface", "eth0", {"netns": None, "device": "eth0"}, "k")
    spec = InterfaceAdapter().prepare(fault("network.loss", "interface", {"device": "eth0"},
                                            {"percent": 0.2, "correlation": 0.5}), target)
    assert "tc" in spec


@pytest.fixture
def stopped_process() -> Iterator[psutil.Process]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        proc = psutil.Process(child.pid)
        proc.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while proc.status() != psutil.STATUS_STOPPED and time.monotonic() < deadline:
            time.sleep(0.01)
        yield proc
    finally:
        child.kill()
        child.wait(5)


def test_a_legacy_suspend_spec_is_reverted(stopped_process: psutil.Process) -> None:
    legacy = {"adapter": "local.process", "action": "resume",
              "processes": [{"pid": stopped_process.pid,
                             "create_time": stopped_process.create_time()}]}
    assert asyncio.run(ProcessAdapter().revert(legacy)) == "reverted"
    assert stopped_process.status() != psutil.STATUS_STOPPED


def test_a_legacy_resource_spec_is_reverted(tmp_path: Path) -> None:
    filled = tmp_path / "chaos-fill-0123456789ab.bin"
    filled.write_bytes(b"\0" * 4096)
    legacy = {"adapter": "local.resource", "fault": "resource.disk_fill",
              "tag": "0123456789abcdef", "workers": [], "files": [str(filled)]}
    assert asyncio.run(HostResourceAdapter().revert(legacy)) == "reverted"
    assert not filled.exists()


def test_legacy_kernel_and_container_specs_are_reverted_as_gone_when_their_place_is_gone(
        ) -> None:
    _, tc = LEGACY["kernel-tc"]
    assert asyncio.run(NetnsAdapter().revert({**tc, "netns": "chaos-no-such-ns"})) == "gone"
    _, network = LEGACY["container-network"]
    assert asyncio.run(ContainerNetworkAdapter().revert(
        {**network, "container": {**CONTAINER, "pid": 0}})) == "gone"
    _, kill = LEGACY["container-kill"]
    assert asyncio.run(ContainerLifecycleAdapter().revert(kill)) == "nothing"
    for case in ("pod-container-kill", "pod-container-kill-planned"):
        _, pod_kill = LEGACY[case]
        assert asyncio.run(ContainerKillAdapter().revert(pod_kill)) == "nothing"
    _, none = LEGACY["process-kill"]
    assert asyncio.run(ProcessAdapter().revert(none)) == "nothing"
    _, clock = LEGACY["clock"]
    assert asyncio.run(ClockAdapter().revert(clock)) == "gone"  # no such offset file
    _, filled = LEGACY["container-disk"]
    assert asyncio.run(ContainerDiskAdapter().revert({**filled, "file": "/etc/passwd"})) == \
        "nothing"  # never a file chaos did not name


def test_a_legacy_in_pod_spec_rebuilds_its_stop_container() -> None:
    _, legacy = LEGACY["in-pod"]
    stop = stop_container(InPodSpec.from_json(legacy))
    args = stop["args"]
    assert args[:3] == ["stop", "--id", "0a1b2c3d4e5f"]
    assert args[args.index("--fault") + 1] == "network.loss"
    assert json.loads(args[args.index("--with") + 1]) == {"percent": 0.3}
    assert stop["securityContext"]["capabilities"]["add"] == ["NET_ADMIN"]
    assert stop["image"] == "chaos:1"


@pytest.mark.parametrize("case", ["kernel-tc", "kernel-nft", "kernel-ipt", "resource"])
def test_the_in_pod_agent_names_what_it_creates_after_the_injection_id(case: str) -> None:
    from chaos.adapters.kubernetes import inpod_agent

    _, legacy = LEGACY[case]
    kind = "resource.cpu" if case == "resource" else "network.loss"
    named = inpod_agent.named(fault(kind, "pods", {}), legacy, "fedcba9876543210")
    expected = {"kernel-tc": {"tc": legacy.get("tc")},
                "kernel-nft": {"nft": {"family": "inet", "table": "chaos_fedcba9876543210"}},
                "kernel-ipt": {"ipt": {"INPUT": "CHAOS-fedcba9876-I",
                                       "OUTPUT": "CHAOS-fedcba9876-O"}},
                "resource": {"tag": "fedcba9876543210"}}[case]
    assert named == {**legacy, "version": 1, **expected}


def test_the_pod_kill_spec_is_written_typed_with_its_version(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")  # read only when a call is made
    target = TargetRef("pods", "shop/web-1", {"namespace": "shop", "name": "web-1", "uid": "u-1",
                                              "containers": ["web", "sidecar"]}, "k")
    kill = FaultSpec(index=0, name="f", type="container.kill", target=Target("pods", frozen({})),
                     params=frozen({"signal": "INT", "container": "sidecar"}), start=0.0,
                     duration=None, kubernetes=frozen({"kubeconfig": str(kubeconfig)}))
    spec = ContainerKillAdapter().prepare(kill, target)
    assert spec == {"adapter": "kubernetes.container.kill", "version": 1, "action": "none",
                    "connection": spec["connection"], "namespace": "shop", "pod": "web-1",
                    "uid": "u-1", "container": "sidecar", "signal": "INT", "id": spec["id"]}
    assert spec["connection"]["kubeconfig"] == str(kubeconfig)
    assert KillSpec.from_json(spec).to_json() == spec
