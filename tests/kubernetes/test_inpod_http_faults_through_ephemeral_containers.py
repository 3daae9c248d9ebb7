"""http.* on pods end to end: `chaos run` patches a `hold` ephemeral container into a pod of the
emulator, the kubelet thread (tests/support/kubernetes/inpod_kubelet.py) runs it for real in the network
namespace standing for the pod, where an HTTP application listens on 8080; a client in another
namespace sees the fault, and the nft redirect is gone afterwards. After SIGKILL of the agent,
`chaos recover --kubernetes` finds the hold container that ended without reverting and adds the
stop container that removes the redirect it left behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos.adapters.kubernetes.ephemeral import PodHttpAdapter
from chaos.model.experiment import FaultSpec, Target, frozen
from tests.conftest import chaos_cmd, run_chaos, wait_until
from tests.support.kubernetes.emulator import PODS, Emulator
from tests.support.kubernetes.inpod_kubelet import Kubelet, add_pod
from tests.support import http_in_netns as http
from tests.support.http_in_netns import PORT, ruleset

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
              pytest.mark.needs("ip", "nft")]
IMAGE = "registry.example/chaos:test"


def patches(k8s: Emulator) -> list[dict[str, Any]]:
    return [c.body["spec"]["ephemeralContainers"][-1] for c in k8s.cluster.calls
            if c.resource == "pods/ephemeralcontainers" and c.verb == "patch"]


def reported(k8s: Emulator, container: str) -> dict[str, Any]:
    """The container's state as the API reports it (the kubelet's, a second late)."""
    pod_obj = k8s.call(lambda c: c.get(PODS, "shop", "web-1")) or {}
    return next((s["state"] for s in pod_obj.get("status", {}).get(
        "ephemeralContainerStatuses") or () if s["name"] == container), {})


def redirected(ns: str) -> bool:
    return f"tcp dport {PORT} redirect to :" in ruleset(ns)


@pytest.fixture
def pod(k8s: Emulator, netns_pair: dict[str, str], tmp_path: Path) -> Iterator[Kubelet]:
    """Pod shop/web-1 (namespace b) with an HTTP application on 8080."""
    add_pod(k8s, "web-1")
    root = tmp_path / "www"
    root.mkdir()
    with http.serve(netns_pair, root), Kubelet(k8s, {"web-1": netns_pair["b"]},
                                               tmp_path) as kubelet:
        yield kubelet


def experiment(path: Path, duration: str) -> Path:
    path.write_text(f"""title: in-pod http abort
kubernetes: {{namespaces: [shop], image: "{IMAGE}"}}
faults:
  - name: pay-errors
    type: http.abort
    target: {{pods: {{namespace: shop, names: [web-1], port: {PORT}}}}}
    with: {{status: 503, path_prefix: /pay}}
    duration: {duration}
""")
    return path


def test_chaos_run_aborts_requests_in_the_pod_through_a_hold_container(
    k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet, tmp_path: Path
) -> None:
    before = ruleset(netns_pair["b"])
    log = tmp_path / "runner.log"
    with open(log, "wb") as out:
        runner = subprocess.Popen(chaos_cmd("run", "-q", str(experiment(
            tmp_path / "http.yaml", "30s"))), stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: redirected(netns_pair["b"]), 60), log.read_text()
        assert http.statuses(netns_pair["a"], netns_pair["ip_b"], 5, "/pay") == {"503": 5}
        assert http.statuses(netns_pair["a"], netns_pair["ip_b"], 5, "/") == {"200": 5}
        runner.wait(180)
    finally:
        runner.kill()
        runner.wait(10)
    hold = patches(k8s)[0]
    assert hold["name"].startswith("chaos-hold-") and hold["image"] == IMAGE
    assert hold["securityContext"]["capabilities"] == {"add": ["NET_ADMIN"], "drop": ["ALL"]}
    args = hold["args"]
    assert args[0] == "hold" and args[args.index("--fault") + 1] == "http.abort"
    assert json.loads(args[args.index("--target") + 1]) == {"port": PORT}
    given = json.loads(args[args.index("--with") + 1])
    assert given["status"] == 503 and given["path_prefix"] == "/pay"
    assert given["seed"].endswith(":pay-errors:web-1"), "percent draws from the run's seed"
    assert ruleset(netns_pair["b"]) == before, log.read_text()
    assert http.statuses(netns_pair["a"], netns_pair["ip_b"], 5, "/pay") == {"200": 5}


class Scope:
    seed = 0
    run_id = "run-inpod-http"

    def service_pid(self, name: str) -> int | None:
        return None

    async def restart_service(self, name: str, signal_name: str | None) -> None:
        raise AssertionError


def test_recover_kubernetes_removes_the_redirect_a_killed_agent_left(
    k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet
) -> None:
    """No ledger, no watchdog (the adapter is called in this process): only the cluster says
    what was left, and `chaos recover --kubernetes` reads it from the hold container."""
    before = ruleset(netns_pair["b"])
    fault = FaultSpec(index=0, name="pay-errors", type="http.abort",
                      target=Target("pods", frozen({"namespace": "shop", "names": ["web-1"],
                                                    "port": PORT})),
                      params=frozen({"status": 503}), start=0.0, duration=600,
                      kubernetes=frozen({"image": IMAGE}))
    adapter = PodHttpAdapter()

    async def inject() -> dict[str, Any]:
        [target] = await adapter.resolve(fault, Scope())
        return await adapter.inject(fault, target, adapter.prepare(fault, target), Scope())

    spec = asyncio.run(inject())
    assert redirected(netns_pair["b"])
    agent, _ = pod.procs["web-1", spec["container"]]
    os.kill(agent.pid, signal.SIGKILL)
    assert wait_until(lambda: "terminated" in reported(k8s, spec["container"]), 30)
    assert redirected(netns_pair["b"]), "SIGKILL gave the agent no chance to revert"
    assert "200" not in http.statuses(netns_pair["a"], netns_pair["ip_b"], 2)

    result = run_chaos("recover", "--kubernetes", "--namespace", "shop")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"reverted  container shop/web-1/{spec['container']} (http.abort) (run " \
        "run-inpod-http)" in result.stdout, result.stdout
    hold, stop = patches(k8s)
    assert stop["name"].startswith(f"chaos-stop-{spec['id']}-") and stop["args"][0] == "stop"
    assert ruleset(netns_pair["b"]) == before
    assert http.statuses(netns_pair["a"], netns_pair["ip_b"], 5, "/pay") == {"200": 5}
    again = run_chaos("recover", "--kubernetes", "--namespace", "shop")
    assert again.returncode == 0 and spec["container"] not in again.stdout, again.stdout


@pytest.mark.parametrize(("pods", "message"), [
    ("{namespace: shop, names: [web-1]}", "faults[0].target.pods.port: HTTP faults in pods "
                                          "redirect the application's port"),
    (f"{{namespace: shop, port: {PORT}, device: eth0}}", "target.pods.device: device is not "
                                                         "used by HTTP faults in pods"),
    (f"{{namespace: shop, port: {PORT}, protocol: udp}}", "HTTP runs over TCP"),
])
def test_http_faults_on_pods_need_the_port_and_nothing_unused(tmp_path: Path, pods: str,
                                                               message: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("title: bad http fault on pods\nfaults:\n  - type: http.abort\n"
                    f"    with: {{status: 503}}\n    target: {{pods: {pods}}}\n"
                    "    duration: 10s\n")
    result = run_chaos("validate", str(file))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert message in out and f"{file}:5:" in out and "Traceback" not in out


def test_http_abort_on_pods_validates(tmp_path: Path) -> None:
    result = run_chaos("validate", str(experiment(tmp_path / "http.yaml", "30s")))
    assert result.returncode == 0, result.stdout + result.stderr


def hold_container(injection_id: str, deadline: float) -> dict[str, Any]:
    return {"name": f"chaos-hold-{injection_id}", "image": IMAGE,
            "command": ["python", "-m", "chaos.adapters.kubernetes.inpod_agent"],
            "args": ["hold", "--id", injection_id, "--name", "pay-errors", "--deadline",
                     f"{deadline:.3f}", "--max-for", "700", "--fault", "http.abort",
                     "--target", json.dumps({"port": PORT}), "--with", '{"status": 503}'],
            "env": [{"name": "CHAOS_RUN_ID", "value": "run-old"}]}


def test_recover_kubernetes_tries_a_failed_stop_once_and_skips_holds_still_held(
    k8s: Emulator
) -> None:
    """Pods as the API shows them (no kubelet): a hold whose stop container already failed is
    reported failed (exit 5) without piling up another container; a hold still running before
    its deadline belongs to a run that may still end it."""
    dead, alive = "0a0a0a0a0a0a", "0b0b0b0b0b0b"
    pod_obj = add_pod(k8s, "web-1")
    pod_obj["spec"]["ephemeralContainers"] = [
        hold_container(dead, time.time() + 600), hold_container(alive, time.time() + 600),
        {**hold_container(dead, 0), "name": f"chaos-stop-{dead}-abcd", "args": ["stop"]}]
    pod_obj["status"]["ephemeralContainerStatuses"] = [
        {"name": f"chaos-hold-{dead}", "state": {"terminated": {"exitCode": 137}}},
        {"name": f"chaos-hold-{alive}", "state": {"running": {}}},
        {"name": f"chaos-stop-{dead}-abcd", "state": {"terminated": {
            "exitCode": 2, "message": "error: nft is not installed"}}}]
    k8s.call(lambda c: c.put(PODS, pod_obj))

    result = run_chaos("recover", "--kubernetes", "--namespace", "shop")
    out = result.stdout + result.stderr
    assert result.returncode == 5, out
    assert (f"failed (a stop container already failed: error: nft is not installed; --force "
            f"tries again) container shop/web-1/chaos-hold-{dead} (http.abort) (run run-old)"
            in out), out
    assert "skipped (held until " in out and f"chaos-hold-{alive}" in out, out
    assert patches(k8s) == [], "nothing was added to the pod"


def test_chaos_inject_http_abort_on_a_pod_from_the_terminal(
    k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet, tmp_path: Path
) -> None:
    before = ruleset(netns_pair["b"])
    log = tmp_path / "inject.log"
    with open(log, "wb") as out:
        cmd = subprocess.Popen(chaos_cmd("inject", "http.abort", "-n", "shop", "--pod", "web-1",
                                         "--port", str(PORT), "--status", "502", "--for", "20s"),
                               stdout=out, stderr=subprocess.STDOUT,
                               env={**os.environ, "CHAOS_K8S_IMAGE": IMAGE})
    try:
        assert wait_until(lambda: redirected(netns_pair["b"]), 60), log.read_text()
        assert http.statuses(netns_pair["a"], netns_pair["ip_b"], 3) == {"502": 3}
        assert cmd.wait(180) == 0, log.read_text()
    finally:
        cmd.kill()
        cmd.wait(10)
    assert ruleset(netns_pair["b"]) == before
    assert http.statuses(netns_pair["a"], netns_pair["ip_b"], 3) == {"200": 3}
    [hold, *_] = patches(k8s)
    assert hold["image"] == IMAGE and json.loads(
        hold["args"][hold["args"].index("--target") + 1]) == {"port": PORT}
