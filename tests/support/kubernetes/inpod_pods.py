"""Pods for the in-pod tests: shop/web-1 backed by a real network namespace (`pod`), a main
process that is PID 1 of its own PID namespace (`container`), the fault specs and the adapter
scope those tests inject with, and the ephemeral containers the adapter patched in.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from chaos.adapters.kubernetes.ephemeral_kill import ContainerKillAdapter
from chaos.model.experiment import FaultSpec, Target, frozen
from tests.support.kubernetes.emulator import Emulator
from tests.support.kubernetes.inpod_kubelet import Kubelet, add_pod

IMAGE = "registry.example/chaos:test"


class Scope:
    seed = 0
    run_id = "run-inpod-1"

    def service_pid(self, name: str) -> int | None:
        return None

    async def restart_service(self, name: str, signal_name: str | None) -> None:
        raise AssertionError


def patches(k8s: Emulator) -> list[dict[str, Any]]:
    """The ephemeral containers the adapter sent, in order (the last of each patch's list)."""
    return [c.body["spec"]["ephemeralContainers"][-1] for c in k8s.cluster.calls
            if c.resource == "pods/ephemeralcontainers" and c.verb == "patch"]


@pytest.fixture
def pod(k8s: Emulator, netns_pair: dict[str, str], tmp_path: Path,
        request: pytest.FixtureRequest) -> Iterator[Kubelet]:
    """Pod shop/web-1, whose network namespace is netns_pair's b, its device renamed eth0.
    Parametrized indirectly: the Kubelet's keyword arguments (delays, cold_start, ...)."""
    ns, dev = netns_pair["b"], netns_pair["dev_b"]
    for step in (["link", "set", dev, "down"], ["link", "set", dev, "name", "eth0"],
                 ["link", "set", "eth0", "up"]):
        subprocess.run(["ip", "-n", ns, *step], check=True, timeout=10)
    netns_pair["dev_b"] = "eth0"
    add_pod(k8s, "web-1")
    with Kubelet(k8s, {"web-1": netns_pair["b"]}, tmp_path,
                 **getattr(request, "param", {})) as kubelet:
        yield kubelet


MAIN = r"""
import signal, sys, time
def handler(signum, frame):
    open(sys.argv[1], "w").write(str(signum))
    sys.exit(0)
signal.signal(signal.SIGTERM, handler)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""
# A main process with a command line as long as a JVM's: the reason must still reach the user.
LONG_ARG = "-classpath=" + ":".join(f"/app/lib/dependency-{n}.jar" for n in range(40))


class Container:
    """A main process that is PID 1 of its PID namespace; as `uid` when given (a non-root
    user cannot reach the test's python under /root: it runs the system's)."""

    def __init__(self, tmp: Path, uid: int | None = None) -> None:
        shared = Path(tempfile.mkdtemp(prefix="container-"))
        shared.chmod(0o777)  # the main process writes what it got, whoever it runs as
        self.got = shared / "got-signal"
        user = [] if uid is None else ["setpriv", f"--reuid={uid}", f"--regid={uid}",
                                       "--clear-groups", "--"]
        python = sys.executable if uid is None else \
            f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
        self.proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", *user,
                                      python, "-c", MAIN, str(self.got), LONG_ARG],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"
        [self.main] = psutil.Process(self.proc.pid).children()  # PID 1 inside

    def close(self) -> None:
        for proc in (self.main, self.proc):
            try:
                proc.kill()
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        self.proc.wait(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    made = Container(tmp_path)
    try:
        yield made
    finally:
        made.close()


def kill_fault(signal_name: str | None, **params: Any) -> FaultSpec:
    if signal_name:
        params["signal"] = signal_name
    return FaultSpec(index=0, name="kill-app", type="container.kill",
                     target=Target("pods", frozen({"namespace": "shop", "names": ["web-1"]})),
                     params=frozen(params), start=0.0, duration=0.0,
                     kubernetes=frozen({"image": IMAGE}))


async def kill(fault: FaultSpec) -> dict[str, Any]:
    adapter = ContainerKillAdapter()
    [target] = await adapter.resolve(fault, Scope())
    spec = adapter.prepare(fault, target)
    spec = await adapter.inject(fault, target, spec, Scope())
    assert await adapter.revert(spec) == "nothing"
    return spec
