"""The kubelet part of the emulator, for in-pod faults: it runs ephemeral containers for real.

kmock stores the ephemeral containers chaos patches into a pod; this runs each one's command
(`python -m chaos.adapters.kubernetes.inpod_agent ...`) inside the network namespace that stands
for the pod (`ip netns exec`), maps the termination log to a file, and writes
status.ephemeralContainerStatuses back (running, then terminated with exit code and message),
as a kubelet does. So the adapter, the agent and the kernel rules are all real; only the
container runtime is this thread.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.kubernetes.emulator import PODS, Emulator


class Kubelet:
    def __init__(self, k8s: Emulator, netns: dict[str, str], workdir: Path,
                 mains: dict[tuple[str, str], int] | None = None,
                 delays: dict[str, float] | None = None) -> None:
        self.k8s, self.netns, self.workdir = k8s, netns, workdir  # pod name -> namespace
        # container name prefix -> seconds it stays "waiting" (ContainerCreating: a slow pull)
        self.delays = delays or {}
        self.seen: dict[tuple[str, str], float] = {}
        self.mains = mains or {}  # (pod, container) -> host pid of its main process (PID 1)
        self.procs: dict[tuple[str, str], tuple[subprocess.Popen[bytes], Path]] = {}
        self.statuses: dict[str, dict[str, dict[str, Any]]] = {}  # pod -> container -> status
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)

    def __enter__(self) -> Kubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for proc, _ in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pod in self.k8s.call(lambda c: c.pods()):
                self._sync(pod)
            time.sleep(0.05)

    def _sync(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        if name not in self.netns and all(pod_name != name for pod_name, _ in self.mains):
            return  # not a pod this kubelet runs
        mine = self.statuses.setdefault(name, {})
        for container in pod.get("spec", {}).get("ephemeralContainers") or ():
            key = (name, container["name"])
            delay = next((d for prefix, d in self.delays.items()
                          if container["name"].startswith(prefix)), 0.0)
            if time.monotonic() < self.seen.setdefault(key, time.monotonic()) + delay:
                mine[container["name"]] = {"name": container["name"], "state": {
                    "waiting": {"reason": "ContainerCreating"}}}
                continue
            if key not in self.procs:
                self.procs[key] = self._start(name, container)
                mine[container["name"]] = {"name": container["name"], "state": {
                    "running": {"startedAt": "2026-01-01T00:00:00Z"}}}
            proc, report = self.procs[key]
            code = proc.poll()
            if code is not None and "terminated" not in mine[container["name"]]["state"]:
                message = report.read_text() if report.exists() else ""
                mine[container["name"]]["state"] = {"terminated": {
                    "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                    "message": message}}
        statuses = list(mine.values())
        namespace = pod["metadata"]["namespace"]

        def write(c: Any) -> None:
            key = (PODS, namespace, name)
            if key in c.objects and not c.objects[key].deleted:
                c.objects[key].patch({"status": {"ephemeralContainerStatuses": statuses}})

        self.k8s.call(write)

    def _start(self, pod: str, container: dict[str, Any]
               ) -> tuple[subprocess.Popen[bytes], Path]:
        """Run the container in the pod's network namespace or, with targetContainerName, in
        the target container's process (and /proc mount) namespace, as the runtime does."""
        command = list(container["command"])
        assert command[:2] == ["python", "-m"], command
        report = self.workdir / f"{container['name']}.termination-log"
        target = container.get("targetContainerName")
        enter = (["nsenter", "-t", str(self.mains[pod, target]), "-p", "-m", "--"] if target
                 else ["ip", "netns", "exec", self.netns[pod]])
        argv = [*enter, sys.executable, "-m", command[2], "--report", str(report),
                *container["args"]]
        log = open(self.workdir / f"{container['name']}.log", "wb")  # noqa: SIM115
        try:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT), report
        finally:
            log.close()


def add_pod(k8s: Emulator, name: str, namespace: str = "shop",
            containers: tuple[str, ...] = ("app",)) -> dict[str, Any]:
    return k8s.call(lambda c: c.put(PODS, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1",
                 "containers": [{"name": n, "image": "app:1"} for n in containers]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}))
