"""In-pod faults on a real cluster (kind in CI): latency, CPU and container.kill through
ephemeral containers running our image; also with the app as non-root in a namespace enforcing
Pod Security "restricted" (kill and CPU pass, a network fault is refused with its hint).
Skipped unless asked for (see test_kubernetes_on_a_real_cluster.py); the image must be in the
cluster first:

    docker build -t ghcr.io/chaos-runner/chaos:0.1.0 .
    kind load docker-image ghcr.io/chaos-runner/chaos:0.1.0 --name chaos-e2e
    KUBECONFIG=~/.kube/config .venv/bin/pytest --with-e2e tests/e2e

The app pods run the same image (python, tc) with a tiny script that writes the signal it got
to its termination log. Effects are read from outside the runner: the pod's qdisc through
pods/exec (`tc qdisc show` needs no capability), the hold container's cgroup CPU time, the
container statuses the kubelet reports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXPERIMENTS, chaos_cmd, run_chaos
from tests.support.real_cluster import api, namespace, ready, wait

pytestmark = pytest.mark.e2e
__all__ = ["api", "namespace"]  # fixtures
IMAGE = os.environ.get("CHAOS_K8S_IMAGE", "ghcr.io/chaos-runner/chaos:0.1.0")
APP = """
import signal, sys, time
def stop(signum, frame):
    with open("/dev/termination-log", "w") as log:
        log.write("got " + signal.Signals(signum).name)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
while True:
    time.sleep(1)
"""
CPU_USEC = ("import pathlib; v2 = pathlib.Path('/sys/fs/cgroup/cpu.stat'); "
            "print(int(dict(l.split() for l in v2.read_text().splitlines())['usage_usec']) "
            "if v2.exists() else "
            "int(pathlib.Path('/sys/fs/cgroup/cpuacct/cpuacct.usage').read_text()) // 1000)")


@pytest.fixture
def privileged(api: Any, namespace: str) -> str:
    """The test namespace, with the Pod Security level that allows NET_ADMIN."""
    api.CoreV1Api().patch_namespace(namespace, {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "privileged"}}})
    return namespace


@pytest.fixture
def image_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CHAOS_K8S_IMAGE", IMAGE)  # for `chaos inject` (files set kubernetes.image)
    return IMAGE


def deploy_app(api: Any, namespace: str, replicas: int,
               pod_security: dict[str, Any] | None = None,
               app_security: dict[str, Any] | None = None) -> list[str]:
    labels = {"app": "web"}
    api.AppsV1Api().create_namespaced_deployment(namespace, {
        "metadata": {"name": "web", "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {
                     "terminationGracePeriodSeconds": 5,
                     "securityContext": pod_security or {},
                     "containers": [{"name": "app", "image": IMAGE,
                                     "imagePullPolicy": "IfNotPresent",
                                     "securityContext": app_security or {},
                                     "command": ["python", "-c", APP]}]}}}})
    wait(lambda: ready(api, namespace, "web") >= replicas, 180)
    return [p.metadata.name for p in pods(api, namespace)]


def pods(api: Any, namespace: str) -> list[Any]:
    return list(api.CoreV1Api().list_namespaced_pod(namespace, label_selector="app=web").items)


def exec_in(api: Any, namespace: str, pod: str, container: str, command: list[str]) -> str:
    from kubernetes.stream import stream

    core = api.CoreV1Api(api.ApiClient())  # stream() takes over its client: a fresh one
    return str(stream(core.connect_get_namespaced_pod_exec, pod, namespace, container=container,
                      command=command, stderr=True, stdout=True, stdin=False, tty=False,
                      _request_timeout=30))


def shaped(api: Any, namespace: str) -> list[str]:
    """The app pods whose eth0 has a netem qdisc with the example's 200 ms delay."""
    return [p.metadata.name for p in pods(api, namespace)
            if "delay 200ms" in exec_in(api, namespace, p.metadata.name, "app",
                                        ["tc", "qdisc", "show", "dev", "eth0"])]


def hold_status(api: Any, namespace: str, pod: str) -> Any:
    statuses = api.CoreV1Api().read_namespaced_pod(pod, namespace).status
    holds = [s for s in statuses.ephemeral_container_statuses or ()
             if s.name.startswith("chaos-hold-")]
    return holds[0] if holds else None


def ended(api: Any, namespace: str, pod: str) -> Any:
    """The hold container's terminated state, once the kubelet reports it."""
    wait(lambda: getattr(hold_status(api, namespace, pod), "state", None) is not None
         and hold_status(api, namespace, pod).state.terminated is not None, 60)
    return hold_status(api, namespace, pod).state.terminated


def finish(proc: subprocess.Popen[str], timeout: float, *, interrupt: bool = False) -> str:
    """The runner's output once it ended; `interrupt`: Ctrl-C it first (it reverts)."""
    if interrupt and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return out


def test_pod_latency_example_shapes_one_pods_eth0_and_the_pod_removes_it(
        api: Any, privileged: str, tmp_path: Path) -> None:
    deploy_app(api, privileged, 3)
    journal = tmp_path / "journal.json"
    proc = subprocess.Popen(chaos_cmd("run", str(EXPERIMENTS / "pod-latency.yaml"),
                                      "--var", f"namespace={privileged}", "--var",
                                      f"image={IMAGE}", "--journal", str(journal)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait(lambda: shaped(api, privileged) or proc.poll() is not None, 180)
        slow = shaped(api, privileged)
    except BaseException:
        finish(proc, 240, interrupt=True)
        raise
    out = finish(proc, 240)
    assert slow and len(slow) == 1, out  # count: 1
    assert proc.returncode == 0, out
    assert shaped(api, privileged) == []
    [injection] = json.loads(journal.read_text())["injections"]
    assert injection["outcome"] == "reverted"
    assert ended(api, privileged, slow[0]).message.startswith("reverted")


def test_inpod_cpu_load_burns_in_the_pod_and_ends(api: Any, namespace: str, image_env: str
                                                  ) -> None:
    [pod] = deploy_app(api, namespace, 1)
    proc = subprocess.Popen(chaos_cmd("inject", "resource.cpu", "-n", namespace, "--pod", pod,
                                      "--load", "100%", "--cores", "1", "--for", "30s"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait(lambda: (hold_status(api, namespace, pod) is not None and hold_status(
            api, namespace, pod).state.running is not None) or proc.poll() is not None, 120)
        hold = hold_status(api, namespace, pod)
        assert hold is not None and hold.state.running is not None, hold

        def cpu_usec() -> int:
            return int(exec_in(api, namespace, pod, hold.name, ["python", "-c", CPU_USEC]))

        first = cpu_usec()
        wait(lambda: cpu_usec() - first >= 1_000_000 or proc.poll() is not None, 25)
        assert cpu_usec() - first >= 1_000_000, "no CPU second burnt in the hold container"
    except BaseException:
        finish(proc, 240, interrupt=True)
        raise
    out = finish(proc, 120)
    assert proc.returncode == 0, out
    assert ended(api, namespace, pod).message.startswith("reverted")
    [app] = pods(api, namespace)[0].status.container_statuses
    assert app.restart_count == 0


def test_container_kill_sends_term_by_default_and_refuses_kill(api: Any, namespace: str,
                                                               image_env: str) -> None:
    [pod] = deploy_app(api, namespace, 1)
    refused = run_chaos("inject", "container.kill", "-n", namespace, "--pod", pod,
                        "--signal", "KILL", timeout=120)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "SIGKILL cannot reach" in refused.stdout + refused.stderr
    live = api.CoreV1Api().read_namespaced_pod(pod, namespace)
    assert not live.spec.ephemeral_containers  # nothing was sent

    killed = run_chaos("inject", "container.kill", "-n", namespace, "--pod", pod, timeout=180)
    assert killed.returncode == 0, killed.stdout + killed.stderr

    def app_status() -> Any:
        return api.CoreV1Api().read_namespaced_pod(pod, namespace).status.container_statuses[0]

    wait(lambda: app_status().restart_count >= 1, 120)
    assert app_status().last_state.terminated.message == "got SIGTERM"
    kill = [s for s in api.CoreV1Api().read_namespaced_pod(pod, namespace).status
            .ephemeral_container_statuses or () if s.name.startswith("chaos-kill-")]
    assert len(kill) == 1


# --- the app as non-root in a namespace enforcing Pod Security "restricted"
RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                  "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_APP = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


@pytest.fixture
def restricted(api: Any, namespace: str) -> str:
    api.CoreV1Api().patch_namespace(namespace, {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted"}}})
    return namespace


def test_restricted_kill_of_a_non_root_app_runs_as_its_user(api: Any, restricted: str,
                                                           image_env: str) -> None:
    """kill(2) across users needs CAP_KILL, which "restricted" forbids: the kill container runs
    as the app's user (runAsUser in the pod spec) and admission takes it."""
    [pod] = deploy_app(api, restricted, 1, RESTRICTED_POD, RESTRICTED_APP)
    killed = run_chaos("inject", "container.kill", "-n", restricted, "--pod", pod, timeout=180)
    assert killed.returncode == 0, killed.stdout + killed.stderr

    def app_status() -> Any:
        return api.CoreV1Api().read_namespaced_pod(pod, restricted).status.container_statuses[0]

    wait(lambda: app_status().restart_count >= 1, 120)
    assert app_status().last_state.terminated.message == "got SIGTERM"
    [kill] = [c for c in api.CoreV1Api().read_namespaced_pod(pod, restricted).spec
              .ephemeral_containers if c.name.startswith("chaos-kill-")]
    assert kill.security_context.run_as_user == 1000


def test_restricted_kill_without_the_apps_user_in_the_spec_is_refused_clearly(
        api: Any, restricted: str, image_env: str) -> None:
    """The app runs as the image's USER (65532); chaos cannot know it, would need root with
    KILL, and "restricted" refuses that: exit 2 with what to set, nothing added."""
    pod_security = {k: v for k, v in RESTRICTED_POD.items() if not k.startswith("runAs")}
    [pod] = deploy_app(api, restricted, 1, {**pod_security, "runAsNonRoot": True},
                       RESTRICTED_APP)
    refused = run_chaos("inject", "container.kill", "-n", restricted, "--pod", pod, timeout=180)
    out = refused.stdout + refused.stderr
    assert refused.returncode == 2, out
    assert "PodSecurity" in out and "runAsUser" in out, out
    assert not api.CoreV1Api().read_namespaced_pod(pod, restricted).spec.ephemeral_containers


def test_restricted_cpu_load_runs_as_non_root_and_ends(api: Any, restricted: str,
                                                       image_env: str) -> None:
    [pod] = deploy_app(api, restricted, 1, RESTRICTED_POD, RESTRICTED_APP)
    done = run_chaos("inject", "resource.cpu", "-n", restricted, "--pod", pod, "--load",
                     "50%", "--cores", "1", "--for", "15s", timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    terminated = ended(api, restricted, pod)
    assert terminated.message.startswith("reverted"), terminated
    [hold] = [c for c in api.CoreV1Api().read_namespaced_pod(pod, restricted).spec
              .ephemeral_containers if c.name.startswith("chaos-hold-")]
    assert hold.security_context.run_as_user == 65532


def test_restricted_network_fault_is_refused_with_the_net_admin_hint(
        api: Any, restricted: str, image_env: str) -> None:
    [pod] = deploy_app(api, restricted, 1, RESTRICTED_POD, RESTRICTED_APP)
    refused = run_chaos("inject", "network.latency", "-n", restricted, "--pod", pod,
                        "--delay", "200ms", "--for", "30s", timeout=180)
    out = refused.stdout + refused.stderr
    assert refused.returncode == 2, out
    assert "NET_ADMIN" in out and "enforce=privileged" in out, out
    assert not api.CoreV1Api().read_namespaced_pod(pod, restricted).spec.ephemeral_containers


def test_network_fault_on_a_non_root_app_in_a_privileged_namespace(
        api: Any, privileged: str, image_env: str) -> None:
    """A pod-level runAsNonRoot: true reaches the ephemeral container; the network role sets
    runAsUser 0 and runAsNonRoot false itself, so the kubelet starts it."""
    [pod] = deploy_app(api, privileged, 1, RESTRICTED_POD, RESTRICTED_APP)
    proc = subprocess.Popen(chaos_cmd("inject", "network.latency", "-n", privileged, "--pod",
                                      pod, "--delay", "200ms", "--for", "60s"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait(lambda: shaped(api, privileged) or proc.poll() is not None, 180)
        assert shaped(api, privileged) == [pod]
    finally:
        out = finish(proc, 240, interrupt=True)
    assert proc.returncode in (0, 130), out
    assert shaped(api, privileged) == []
