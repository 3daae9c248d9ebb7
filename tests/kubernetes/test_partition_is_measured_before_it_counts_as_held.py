"""network.partition with `verify_port`: the fault counts as injected only once new connections
from the runner to the pods fail. The emulated network plugin (cluster_rules.NetworkPlugin)
drops what the NetworkPolicies forbid with real nftables rules on loopback pod IPs, after a
programming delay, or enforces nothing (kindnet). Observed from outside: an independent TCP
client, the policies the emulator holds, the journal."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import chaos_cmd, run_chaos
from tests.support.kubernetes.cluster_rules import NetworkPlugin, connects, listening
from tests.kubernetes.conftest import add_pod, calls, write_experiment
from tests.support.kubernetes.emulator import NETPOLS, PODS, Emulator

IP = "127.77.0.2"


@pytest.fixture
def plugin(k8s: Emulator) -> Iterator[NetworkPlugin]:
    if shutil.which("nft") is None or os.geteuid() != 0:
        pytest.skip("needs nft and root (the emulated network plugin programs nftables)")
    plugin = NetworkPlugin(table=f"chaos_test_cni_{os.getpid()}")
    k8s.cluster.rules.plugin = plugin
    try:
        yield plugin
    finally:
        k8s.cluster.rules.plugin = None
        plugin.remove()


def add_web(k8s: Emulator, port: int, ip: str = IP) -> None:
    pod = add_pod(k8s, "web")
    pod["status"]["podIP"] = ip
    pod["metadata"]["annotations"] = {"emulator/ports": str(port)}
    k8s.call(lambda c: c.put(PODS, pod))


def partition(tmp_path: Path, port: int, duration: str = "3s") -> Path:
    return write_experiment(tmp_path / "partition.json", [{
        "type": "network.partition", "duration": duration, "with": {"verify_port": port},
        "target": {"pods": {"namespace": "shop", "labels": {"app": "web"}}}}])


def policies(k8s: Emulator) -> list[str]:
    return k8s.call(lambda c: [name for (res, _, name), obj in c.objects.items()
                               if res == NETPOLS and not obj.deleted])


def wait_for(check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_fault_counts_once_new_connections_fail(
        k8s: Emulator, plugin: NetworkPlugin, state_dir: Path, tmp_path: Path) -> None:
    with listening(IP) as port:
        add_web(k8s, port)
        assert connects(IP, port)
        journal = tmp_path / "journal.json"
        proc = subprocess.Popen(chaos_cmd("run", str(partition(tmp_path, port)), "--journal",
                                          str(journal), "-q"),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for(lambda: policies(k8s) or proc.poll() is not None)
            wait_for(lambda: not connects(IP, port, timeout=0.3) or proc.poll() is not None)
            cut_while_running = proc.poll() is None
            out, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)  # an unwaited Popen warns in a later test
        assert proc.returncode == 0, out
        assert cut_while_running
        spec = json.loads(journal.read_text())["injections"][0]["revert_spec"]
        assert spec["verified"].startswith(f"new connections to 1 pods on port {port} failed")
        assert policies(k8s) == []
        wait_for(lambda: connects(IP, port))


def test_a_plugin_that_enforces_nothing_fails_the_fault_and_the_policy_goes(
        k8s: Emulator, plugin: NetworkPlugin, state_dir: Path, tmp_path: Path) -> None:
    plugin.enforces = False  # kindnet, flannel
    with listening(IP) as port:
        add_web(k8s, port)
        result = run_chaos("run", str(partition(tmp_path, port, "20s")), "-q")
        out = result.stdout + result.stderr
        assert result.returncode == 4, out
        assert "did not hold" in out and "network plugin must enforce" in out, out
        assert len(calls(k8s, "create", "networkpolicies")) == 1
        assert policies(k8s) == []
        assert connects(IP, port)


def test_pods_the_runner_cannot_reach_cannot_be_verified(
        k8s: Emulator, plugin: NetworkPlugin, state_dir: Path, tmp_path: Path) -> None:
    with listening(IP) as port:
        pass  # nothing listens there any more
    add_web(k8s, port)
    result = run_chaos("run", str(partition(tmp_path, port)), "-q")
    out = result.stdout + result.stderr
    assert result.returncode == 4, out
    assert "cannot verify the partition" in out and "run the experiment in" in out, out
    assert calls(k8s, "create", "networkpolicies") == []


def test_verify_port_outside_pods_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text("title: t\nfaults:\n  - type: network.partition\n"
                    "    target: {proxy: {listen: 127.0.0.1:15432, upstream: 127.0.0.1:5432}}\n"
                    "    with: {verify_port: 5432}\n    duration: 1s\n")
    result = run_chaos("validate", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{path}:5:" in result.stderr + result.stdout
    assert "with.verify_port" in result.stdout + result.stderr
