"""container.kill for real: the "container" is a process that is PID 1 of its own PID namespace
(`unshare --pid --fork --mount-proc`), as a container's main process is. The kill container
(targetContainerName) joins that namespace, as the runtime does, and the agent signals PID 1.

A handled signal (TERM, the default) arrives and ends the process; a signal the process does not
handle — SIGKILL always — which the kernel drops when it comes from inside the namespace to its
init, is refused with that reason and the signals it does handle, and leaves the process
running, instead of reporting a kill that did not happen. KILL itself is refused before any API
call. Through the emulator: the ephemeral container spec (targetContainerName, no
capabilities, the signal in its args).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos.adapters.kubernetes import ephemeral_kill
from chaos.errors import FaultFailed, GuardRefused, PermissionDenied, UsageError
from chaos.model.experiment import FaultSpec, Target, frozen
from tests.conftest import wait_until
from tests.support.kubernetes.emulator import PODS, Emulator
from tests.support.kubernetes.ephemeral_realism import set_level
from tests.support.kubernetes.inpod_kubelet import Kubelet, add_pod
from tests.support.kubernetes.inpod_pods import (
    IMAGE,
    Container,
    container,  # noqa: F401 - the fixture
    kill,
    kill_fault,
    patches,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="PID namespaces need root")
AGENT = [sys.executable, "-m", "chaos.adapters.kubernetes.inpod_agent"]


def agent_kill(container: Container, tmp: Path, signal_name: str,
               *extra: str) -> tuple[int, str]:
    report = tmp / f"kill-{signal_name}.log"
    done = subprocess.run(["nsenter", "-t", str(container.main.pid), "-p", "-m", "--", *AGENT,
                           "--report", str(report), "kill", "--signal", signal_name, *extra],
                          capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, report.read_text()


def test_a_handled_signal_reaches_the_main_process(container: Container,
                                                   tmp_path: Path) -> None:
    code, report = agent_kill(container, tmp_path, "TERM")
    # the agent may die with the namespace's init (SIGKILL from the kernel): its line is out
    assert code in (0, -9) and report.startswith("killed: sent SIGTERM to pid 1 ("), report
    assert container.proc.wait(10) == 0
    assert container.got.read_text() == "15"


def test_sigkill_to_a_namespace_init_is_refused_with_the_reason(container: Container,
                                                                tmp_path: Path) -> None:
    code, report = agent_kill(container, tmp_path, "KILL")
    assert code == 2, report
    assert "PID 1 of its process namespace" in report and "does not handle SIGKILL" in report
    assert "pod.delete" in report  # what to do instead
    assert container.main.is_running() and container.proc.poll() is None


def test_the_kill_container_targets_the_container_and_signals_it(
    k8s: Emulator, container: Container, tmp_path: Path
) -> None:
    add_pod(k8s, "web-1", containers=("app", "sidecar"))
    with Kubelet(k8s, {}, tmp_path, {("web-1", "app"): container.main.pid}):
        spec = asyncio.run(kill(kill_fault(None, container="app")))  # the default: TERM
        assert spec["via"] == "ephemeral" and spec["result"].startswith("killed: sent SIGTERM")
        assert container.proc.wait(10) == 0
        with pytest.raises(PermissionDenied) as refused:
            asyncio.run(kill(kill_fault("TERM", container="nope")))
        assert "has no container 'nope'" in str(refused.value)
    [sent] = patches(k8s)
    assert sent["targetContainerName"] == "app" and sent["image"] == IMAGE
    assert sent["args"][:4] == ["kill", "--signal", "TERM", "--deadline"]
    assert float(sent["args"][4]) == pytest.approx(time.time() + 60, abs=30)
    # the pod spec does not say the app's user: root, with KILL alone ("baseline" allows it)
    assert sent["securityContext"]["capabilities"] == {"add": ["KILL"], "drop": ["ALL"]}
    assert sent["securityContext"]["runAsUser"] == 0


def test_kill_of_an_init_that_ignores_it_fails_clearly(
    k8s: Emulator, container: Container, tmp_path: Path
) -> None:
    add_pod(k8s, "web-1")
    with Kubelet(k8s, {}, tmp_path, {("web-1", "app"): container.main.pid}):
        with pytest.raises(PermissionDenied) as refused:
            asyncio.run(kill(kill_fault("USR1")))  # default container: the first, "app"
    assert "does not handle SIGUSR1" in str(refused.value)
    assert "kill-app on container app of pod shop/web-1" in str(refused.value)
    assert "TERM" in str(refused.value.hint) and "pod.delete" in str(refused.value.hint)
    assert container.main.is_running()


def test_sigkill_is_refused_before_any_call_with_what_to_do_instead(k8s: Emulator) -> None:
    add_pod(k8s, "web-1")
    with pytest.raises(UsageError) as refused:
        asyncio.run(kill(kill_fault("KILL")))
    assert "SIGKILL cannot reach a container's main process" in str(refused.value)
    assert "signal: TERM" in str(refused.value.hint) and "pod.delete" in str(refused.value.hint)
    assert [c for c in k8s.cluster.calls if c.verb != "list"] == []


@pytest.mark.parametrize(("field", "reason"), [
    ("hostPID", "node's init"),  # PID 1 would be the node's init
    ("shareProcessNamespace", "one process namespace"),  # PID 1 would be the pause process
])
def test_a_pod_whose_pid_1_is_not_the_container_is_refused_before_any_patch(
    k8s: Emulator, field: str, reason: str
) -> None:
    k8s.call(lambda c: c.put(PODS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "shop"},
        "spec": {field: True, "containers": [{"name": "app", "image": "a"}]},
        "status": {"phase": "Running"}}))
    with pytest.raises(GuardRefused) as refused:
        asyncio.run(kill(kill_fault("TERM")))
    assert f"{field}: true" in str(refused.value) and reason in str(refused.value)
    assert patches(k8s) == []


@pytest.fixture
def app_as_1000(tmp_path: Path) -> Iterator[Container]:
    made = Container(tmp_path, uid=1000)
    try:
        yield made
    finally:
        made.close()


def pod_with(k8s: Emulator, name: str, security: dict[str, Any] | None = None,
             app_security: dict[str, Any] | None = None) -> None:
    k8s.call(lambda c: c.put(PODS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop"},
        "spec": {"securityContext": security or {}, "containers": [
            {"name": "app", "image": "app:1", "securityContext": app_security or {}}]},
        "status": {"phase": "Running"}}))


RESTRICTED_APP = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


@pytest.mark.parametrize("security", [
    {"runAsUser": 1000, "runAsGroup": 1000},  # the spec says the app's user
    {},  # only the image knows (its USER 1000): root with KILL
], ids=["runAsUser-in-spec", "image-user"])
def test_a_main_process_running_as_another_user_is_signalled(
    k8s: Emulator, app_as_1000: Container, tmp_path: Path, security: dict[str, Any]
) -> None:
    """kill(2) needs the sender's UID to match or CAP_KILL: the kubelet runs the kill container
    with the user and capabilities its securityContext gives, and the kernel decides."""
    pod_with(k8s, "web-1", security)
    with Kubelet(k8s, {}, tmp_path, {("web-1", "app"): app_as_1000.main.pid},
                 images={"app:1": 1000}):
        spec = asyncio.run(kill(kill_fault("TERM")))
    assert spec["result"].startswith("killed: sent SIGTERM"), spec
    assert app_as_1000.proc.wait(10) == 0 and app_as_1000.got.read_text() == "15"
    [sent] = patches(k8s)
    if security:
        assert sent["securityContext"]["runAsUser"] == 1000
        assert sent["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_a_restricted_namespace_takes_the_kill_container_as_the_apps_user(
    k8s: Emulator, app_as_1000: Container, tmp_path: Path
) -> None:
    """Pod Security "restricted" checks the whole pod on pods/ephemeralcontainers: the kill
    container passes as the app's non-root user; as root (user unknown) it is refused with a
    hint of its own, not the NET_ADMIN one."""
    k8s.call(lambda c: set_level(c, "shop", "restricted"))
    hardened = {"runAsNonRoot": True, "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"}}
    pod_with(k8s, "web-1", hardened, RESTRICTED_APP)
    pod_with(k8s, "web-2", {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
             RESTRICTED_APP)
    with Kubelet(k8s, {}, tmp_path, {("web-1", "app"): app_as_1000.main.pid},
                 images={"app:1": 1000}):
        spec = asyncio.run(kill(kill_fault("TERM")))
        assert spec["result"].startswith("killed: sent SIGTERM"), spec
        assert app_as_1000.proc.wait(10) == 0
        fault = kill_fault("TERM")
        fault = FaultSpec(index=0, name="kill-app", type="container.kill", target=Target(
            "pods", frozen({"namespace": "shop", "names": ["web-2"]})), params=fault.params,
            start=0.0, duration=0.0, kubernetes=fault.kubernetes)
        with pytest.raises(PermissionDenied) as refused:
            asyncio.run(kill(fault))
    assert 'violates PodSecurity "restricted:latest"' in str(refused.value)
    assert "runAsUser" in refused.value.hint and "NET_ADMIN" not in refused.value.hint


def test_the_agent_refuses_to_signal_itself_when_it_is_pid_1(tmp_path: Path) -> None:
    """A runtime that ignores targetContainerName gives the kill container its own PID
    namespace, where PID 1 is the agent: it must not signal itself and call that a kill."""
    report = tmp_path / "self.log"
    done = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", *AGENT, "--report",
                           str(report), "kill", "--signal", "TERM"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2, done
    assert "the kill container is itself pid 1" in report.read_text()
    assert "targetContainerName" in report.read_text()


def test_a_kill_agent_started_after_its_deadline_sends_nothing(container: Container,
                                                              tmp_path: Path) -> None:
    code, report = agent_kill(container, tmp_path, "TERM", "--deadline",
                              f"{time.time() - 1:.3f}")
    assert code == 0 and report.startswith("ended: started after its deadline"), report
    assert container.main.is_running() and not container.got.exists()


def test_a_kill_container_whose_image_pull_fails_for_a_while_is_waited_for(
    k8s: Emulator, container: Container, tmp_path: Path
) -> None:
    """The kubelet retries a failed pull: the inject waits (within the container's deadline)
    instead of reporting a failure that the kill would contradict a few seconds later."""
    add_pod(k8s, "web-1")
    with Kubelet(k8s, {}, tmp_path, {("web-1", "app"): container.main.pid},
                 pulls={"chaos-kill-": 3.0}) as kubelet:
        spec = asyncio.run(kill(kill_fault("TERM")))
        assert spec["result"].startswith("killed: sent SIGTERM"), spec
        assert container.proc.wait(10) == 0
    waited = [s for when, s in next(iter(kubelet.history.values()))]
    assert (waited[0].get("waiting") or {}).get("reason") == "ErrImagePull"


def test_a_kill_container_that_starts_after_its_deadline_does_nothing(
    k8s: Emulator, container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ephemeral containers cannot be removed: one that the kubelet starts after the inject
    gave up (a pull that kept failing) must not signal the app unannounced."""
    monkeypatch.setattr(ephemeral_kill, "KILL_START", 2.0)
    monkeypatch.setattr(ephemeral_kill, "CLOCK_SKEW", 0.5)
    add_pod(k8s, "web-1")
    with Kubelet(k8s, {}, tmp_path, {("web-1", "app"): container.main.pid},
                 pulls={"chaos-kill-": 6.0}) as kubelet:
        with pytest.raises(FaultFailed) as failed:
            asyncio.run(kill(kill_fault("TERM")))
        assert "did not run before its deadline" in str(failed.value)
        assert "ErrImagePull" in str(failed.value)
        [name] = [c for _, c in kubelet.history]
        assert wait_until(lambda: "terminated" in kubelet.statuses["web-1"][name]["state"], 30)
    ended = kubelet.statuses["web-1"][name]["state"]["terminated"]
    assert ended["message"].startswith("ended: started after its deadline"), ended
    assert container.main.is_running() and container.proc.poll() is None


def test_a_kill_agent_of_another_user_without_kill_says_which_users_differ(
    app_as_1000: Container, tmp_path: Path
) -> None:
    """Where the kernel refuses kill(2) (EPERM), the report names both UIDs and what to set,
    and nothing was sent."""
    from tests.support.kubernetes.inpod_kubelet import image_python

    user = ["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--"]
    report = Path(tempfile.mkdtemp(prefix="kill-report-")) / "report"
    report.parent.chmod(0o777)
    done = subprocess.run(["nsenter", "-t", str(app_as_1000.main.pid), "-p", "-m", "--", *user,
                           *image_python(user), "-m", "chaos.adapters.kubernetes.inpod_agent",
                           "--report", str(report), "kill", "--signal", "TERM"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done
    said = report.read_text()
    assert "it runs as uid 1000, this kill container as uid 65532" in said, said
    assert "runAsUser" in said
    assert app_as_1000.main.is_running() and not app_as_1000.got.exists()
