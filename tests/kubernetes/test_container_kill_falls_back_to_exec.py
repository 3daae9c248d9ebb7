"""container.kill on a cluster without ephemeral containers: the pods/exec fallback, for real.

The emulator answers 404 for pods/ephemeralcontainers and serves pods/exec as a websocket with
Kubernetes's channel protocol; the test kubelet runs each exec'd command in the "container" (a
process that is PID 1 of its own PID namespace, as in
test_inpod_container_kill_signals_the_main_process.py) with `nsenter -p -m`. So the client's
`stream()`, the channel frames, the exit status on the error channel and the kernel's rule for a
namespace's init are all real.

Shown: TERM ends the main process (its own marker file says it got signal 15) and the call log
holds the exec with its command and container; `chaos run` records the kill as done via exec in
its ledger and journal; a signal PID 1 does not handle is refused with the ephemeral path's
reason and nothing is sent; a kill that cannot start, exits nonzero or does not end is a clear
error; a 403 on pods/exec names the missing rule.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp.web
import pytest

from chaos.adapters.kubernetes import ephemeral_kill, ephemeral_spec
from chaos.adapters.kubernetes.api import Unreachable
from chaos.errors import FaultFailed, PermissionDenied
from chaos.safety.ledger import read_records
from tests.conftest import journals, run_chaos, wait_until
from tests.kubernetes.conftest import calls, write_experiment
from tests.support.kubernetes.emulator import Emulator
from tests.support.kubernetes.inpod_kubelet import Kubelet, add_pod, without_ephemeral
from tests.support.kubernetes.inpod_pods import (
    Container,
    container,
    kill,
    kill_fault,
)

__all__ = ["container"]  # the fixture: a process that is PID 1 of its own PID namespace
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="PID namespaces need root")
CAT = ["cat", "/proc/1/status"]


@pytest.fixture
def cluster(k8s: Emulator) -> Emulator:
    """Pod shop/web-1 (containers app and sidecar) on a cluster without ephemeral containers."""
    k8s.call(without_ephemeral)
    add_pod(k8s, "web-1", containers=("app", "sidecar"))
    return k8s


def execs(k8s: Emulator, verb: str = "create") -> list[tuple[str | None, list[str], str | None]]:
    """(pod, command, container) of every pods/exec call the emulator received."""
    return [(c.name, [v for k, v in c.query if k == "command"], dict(c.query).get("container"))
            for c in calls(k8s, verb, "pods/exec")]


# an API server through 1.34 authorizes the websocket GET as `get` only, 1.35+ as `get` and
# `create`; before 1.30 it speaks no v5
@pytest.mark.parametrize("protocol,version", [("v4.channel.k8s.io", (1, 35)),
                                              ("v5.channel.k8s.io", (1, 35)),
                                              ("v4.channel.k8s.io", (1, 29))])
def test_term_through_exec_ends_the_main_process(cluster: Emulator, container: Container,
                                                 tmp_path: Path, protocol: str,
                                                 version: tuple[int, int]) -> None:
    cluster.call(lambda c: setattr(c, "version", version))
    verb = "get"  # checked on every version
    with Kubelet(cluster, {}, tmp_path, {("web-1", "app"): container.main.pid},
                 protocols=(protocol,)) as kubelet:
        spec = asyncio.run(kill(kill_fault("TERM", container="app")))
    assert container.proc.wait(10) == 0
    assert container.got.read_text() == "15"  # the main process's own handler ran
    assert spec["via"] == "exec", spec
    assert spec["result"].startswith("killed: sent SIGTERM to pid 1 (python"), spec
    assert "could not be read" not in spec["result"]
    # the ephemeral container was tried first (404), then exec: read the handlers, then kill
    assert [c.verb for c in calls(cluster, "patch", "pods/ephemeralcontainers")] == ["patch"]
    assert execs(cluster, verb) == [("web-1", CAT, "app"),
                                    ("web-1", ["kill", "-s", "TERM", "1"], "app")]
    assert [c.namespace for c in calls(cluster, verb, "pods/exec")] == ["shop", "shop"]
    assert kubelet.execs == [("web-1", "app", CAT), ("web-1", "app", ["kill", "-s", "TERM", "1"])]
    assert kubelet.negotiated == [protocol, protocol]


def test_chaos_run_records_the_kill_through_exec(cluster: Emulator, container: Container,
                                                 tmp_path: Path, state_dir: Path) -> None:
    experiment = write_experiment(tmp_path / "kill.yaml", [{
        "name": "kill-app", "type": "container.kill",
        "target": {"pods": {"namespace": "shop", "names": ["web-1"]}},
        "with": {"signal": "TERM", "container": "app"}}],
        kubernetes={"namespaces": ["shop"], "image": "registry.example/chaos:test"})
    with Kubelet(cluster, {}, tmp_path, {("web-1", "app"): container.main.pid}):
        result = run_chaos("run", str(experiment))
    assert result.returncode == 0, result.stdout + result.stderr
    assert container.proc.wait(10) == 0 and container.got.read_text() == "15"
    [ledger] = state_dir.rglob("*.jsonl")
    # the applied record carries the spec inject refined: how the kill was done
    [revert] = [r["revert"] for r in read_records(ledger) if r["event"] == "applied"]
    assert revert["via"] == "exec" and revert["container"] == "app", revert
    assert revert["result"].startswith("killed: sent SIGTERM to pid 1"), revert
    [journal] = journals(tmp_path / "runs")  # CHAOS_RUNS_DIR, set by state_dir
    [injection] = journal["injections"]
    assert injection["revert_spec"]["via"] == "exec" and injection["outcome"] == "nothing", \
        injection
    assert [cmd for _, cmd, _ in execs(cluster)][-1] == ["kill", "-s", "TERM", "1"]


def test_a_signal_pid_1_does_not_handle_is_refused_and_not_sent(
    cluster: Emulator, container: Container, tmp_path: Path
) -> None:
    with Kubelet(cluster, {}, tmp_path, {("web-1", "app"): container.main.pid}), \
            pytest.raises(PermissionDenied) as refused:
        asyncio.run(kill(kill_fault("USR1")))  # default container: the first, "app"
    # the same reason and advice as the agent gives through the ephemeral container
    assert "kill-app on container app of pod shop/web-1" in str(refused.value)
    assert "PID 1 of its process namespace and does not handle SIGUSR1" in str(refused.value)
    assert "nothing was sent" in str(refused.value)
    assert "TERM" in refused.value.hint and "pod.delete" in refused.value.hint
    assert execs(cluster) == [("web-1", CAT, "app")]  # no kill was exec'd
    assert container.main.is_running() and not container.got.exists()


@pytest.mark.parametrize(("image", "said"), [
    # an image without `cat` or `kill` (distroless): the runtime cannot start the command
    ("empty", 'exec: "kill": executable file not found in $PATH'),
    # a `kill` that fails: a Failure status whose cause carries the exit code
    ("failing-kill", "(exit code 1): command terminated with non-zero exit code"),
])
def test_a_kill_that_fails_in_the_container_is_a_clear_error(
    cluster: Emulator, container: Container, tmp_path: Path, image: str, said: str
) -> None:
    bin_dir = tmp_path / image
    bin_dir.mkdir()
    if image == "failing-kill":
        (bin_dir / "cat").symlink_to("/bin/cat")
        fake = bin_dir / "kill"
        fake.write_text("#!/bin/sh\necho 'kill: (1) - Operation not permitted' >&2\nexit 1\n")
        fake.chmod(0o755)
    with Kubelet(cluster, {}, tmp_path, {("web-1", "app"): container.main.pid},
                 paths={("web-1", "app"): str(bin_dir)}), \
            pytest.raises(FaultFailed) as failed:
        asyncio.run(kill(kill_fault("TERM")))
    text = str(failed.value)
    assert "kill-app: `kill -s TERM 1` through pods/exec in container app of pod shop/web-1 " \
           "failed" in text and said in text, text
    if image == "failing-kill":
        assert "Operation not permitted" in text  # the command's own stderr
    assert failed.value.hint == ephemeral_spec.KILL_HINT
    assert [cmd[0] for _, cmd, _ in execs(cluster)] == ["cat", "kill"]
    assert container.main.is_running() and not container.got.exists()


def test_an_exec_that_does_not_end_is_given_up_not_waited_for(
    cluster: Emulator, container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "slow-kill"
    bin_dir.mkdir()
    (bin_dir / "cat").symlink_to("/bin/cat")
    (bin_dir / "kill").write_text("#!/bin/sh\nsleep 3\n")
    (bin_dir / "kill").chmod(0o755)
    monkeypatch.setattr(ephemeral_kill, "EXEC_TIMEOUT", 1.0)
    with Kubelet(cluster, {}, tmp_path, {("web-1", "app"): container.main.pid},
                 paths={("web-1", "app"): str(bin_dir)}) as kubelet:
        with pytest.raises(FaultFailed) as failed:
            asyncio.run(kill(kill_fault("TERM")))
        # the kubelet's side ends after its kill does: let it, before the emulator stops
        assert wait_until(lambda: kubelet.served == 2, 10) is not None
    assert "failed: it did not end within 1s" in str(failed.value), str(failed.value)
    assert container.main.is_running()


def test_an_exec_upgrade_that_is_never_answered_is_given_up(
    cluster: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API server (or a proxy before it) that takes the connection and never answers the
    websocket upgrade: without a handshake timeout the client waits forever, in a thread the
    runner's exit then waits for too."""
    answer = cluster.call(lambda c: asyncio.Event())

    async def silent(*_: object) -> aiohttp.web.StreamResponse:
        await answer.wait()  # released once the test is done, so the emulator stops at once
        return aiohttp.web.Response(status=500)

    cluster.call(lambda c: setattr(c, "exec_server", silent))
    monkeypatch.setattr(ephemeral_kill, "HANDSHAKE_TIMEOUT", 1.0)
    try:
        with pytest.raises(Unreachable) as failed:
            asyncio.run(asyncio.wait_for(kill(kill_fault("TERM")), 20))
    finally:
        cluster.call(lambda c: answer.set())
        cluster.call(lambda c: setattr(c, "exec_server", None))
    assert "did not answer the exec's websocket upgrade within 1s" in str(failed.value), \
        str(failed.value)
    assert "cannot reach" not in str(failed.value) and failed.value.hint == Unreachable.hint
    assert [cmd for _, cmd, _ in execs(cluster)] == [CAT]  # asked once, nothing after


@pytest.mark.parametrize("version,verb", [((1, 35), "create"), ((1, 35), "get"),
                                          ((1, 34), "get")])
def test_no_exec_permission_names_the_missing_rule(cluster: Emulator, container: Container,
                                                   tmp_path: Path, version: tuple[int, int],
                                                   verb: str) -> None:
    cluster.call(lambda c: setattr(c, "version", version))
    cluster.call(lambda c: c.deny.add((verb, "", "pods/exec")))
    with Kubelet(cluster, {}, tmp_path, {("web-1", "app"): container.main.pid}) as kubelet, \
            pytest.raises(PermissionDenied) as refused:
        asyncio.run(kill(kill_fault("TERM")))
    # the verb the API server checked, not the one chaos assumed
    assert f"not allowed to {verb} pods/exec in namespace shop (403 Forbidden)" in \
        str(refused.value), str(refused.value)
    assert f'cannot {verb} resource "pods/exec"' in str(refused.value)  # the API's own words
    assert f'resources: ["pods/exec"], verbs: ["{verb}"]' in refused.value.hint
    assert "the Role chaos-runner has this rule" in refused.value.hint
    assert kubelet.execs == [] and container.main.is_running()


def test_through_1_34_exec_is_authorized_as_get_alone(cluster: Emulator, container: Container,
                                                      tmp_path: Path) -> None:
    """A Role without `create` on pods/exec is enough before 1.35: the extra check is new."""
    cluster.call(lambda c: setattr(c, "version", (1, 34)))
    cluster.call(lambda c: c.deny.add(("create", "", "pods/exec")))
    with Kubelet(cluster, {}, tmp_path, {("web-1", "app"): container.main.pid}):
        spec = asyncio.run(kill(kill_fault("TERM")))
    assert spec["via"] == "exec" and container.proc.wait(10) == 0
    assert calls(cluster, "create", "pods/exec") == []
    assert len(calls(cluster, "get", "pods/exec")) == 2
