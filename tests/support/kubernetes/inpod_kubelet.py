"""The kubelet part of the emulator, for in-pod faults: it runs ephemeral containers for real.

kmock stores the ephemeral containers chaos patches into a pod; this runs each one's command
(`python -m chaos.adapters.kubernetes.inpod_agent ...`) inside the network namespace that stands
for the pod (`ip netns exec`), maps the termination log to a file, and writes
status.ephemeralContainerStatuses back (running, then terminated with exit code and message),
as a kubelet does. So the adapter, the agent and the kernel rules are all real; only the
container runtime is this thread.

It also serves pods/exec for the emulator: the websocket with Kubernetes's channel protocol
(v4/v5.channel.k8s.io: binary frames whose first byte is the channel, 1 stdout, 2 stderr, 3 the
metav1.Status of the command's end, with the exit code as a cause), running the command in the
container's PID and mount namespaces (`nsenter -t MAIN -p -m`), where its PID 1 is the main
process. A container's PATH (`paths`) stands for what its image has: a command not on it fails to
start, as the runtime's "executable file not found" does.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp.web

from tests.support.kubernetes import ephemeral_realism as real
from tests.support.kubernetes.emulator import PODS, Cluster, Emulator

# v4: what clusters without ephemeral containers (before 1.25) speak; v5 (1.30+) adds only a
# close-channel frame for stdin, which a non-interactive exec does not use
CHANNEL_PROTOCOLS = ("v4.channel.k8s.io",)
STDOUT, STDERR, ERROR = 1, 2, 3  # the exec websocket's channels (0 would be stdin)
EXEC_TIMEOUT = 60.0


class Kubelet:
    def __init__(self, k8s: Emulator, netns: dict[str, str], workdir: Path,
                 mains: dict[tuple[str, str], int] | None = None,
                 delays: dict[str, float] | None = None,
                 paths: dict[tuple[str, str], str] | None = None,
                 protocols: tuple[str, ...] = CHANNEL_PROTOCOLS,
                 images: dict[str, int] | None = None,
                 pulls: dict[str, float] | None = None,
                 image_errors: dict[str, str] | None = None,
                 cold_start: float = 0.0,
                 report_delay: float = real.STATUS_DELAY) -> None:
        self.k8s, self.netns, self.workdir = k8s, netns, workdir  # pod name -> namespace
        # container name prefix -> seconds it stays "waiting" (ContainerCreating: a slow pull)
        self.delays = delays or {}
        # container name prefix -> seconds its image pull fails (ErrImagePull) before it works
        self.pulls = pulls or {}
        # container name prefix -> a waiting reason it keeps (an image error that never clears)
        self.image_errors = image_errors or {}
        self.images = images or {}  # image -> the uid of its USER (root when not listed)
        self.cold_start = cold_start  # seconds between "running" and the command's exec
        self.report_delay = report_delay  # how late a state change shows in the pod status
        self.seen: dict[tuple[str, str], float] = {}
        self.mains = mains or {}  # (pod, container) -> host pid of its main process (PID 1)
        self.paths = paths or {}  # (pod, container) -> its PATH (default: the host's)
        self.execs: list[tuple[str, str, list[str]]] = []  # (pod, container, argv) run
        self.protocols = protocols  # the exec websocket's subprotocols it accepts
        self.negotiated: list[str | None] = []  # the one each exec's handshake chose
        self.served = 0  # execs whose websocket the kubelet has closed
        self.procs: dict[tuple[str, str], tuple[subprocess.Popen[bytes], Path]] = {}
        self.statuses: dict[str, dict[str, dict[str, Any]]] = {}  # pod -> container -> status
        # (pod, container) -> [(when, state)]: the truth; the API sees it report_delay late
        self.history: dict[tuple[str, str], list[tuple[float, dict[str, Any]]]] = {}
        # termination logs a non-root container can write (the kubelet makes them 0666)
        self.rundir = Path(tempfile.mkdtemp(prefix="kubelet-"))
        self.rundir.chmod(0o755)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)

    def __enter__(self) -> Kubelet:
        self._thread.start()
        self.k8s.call(lambda c: setattr(c, "exec_server", self.serve_exec))
        self.k8s.call(lambda c: setattr(c, "log_server", self.serve_log))
        return self

    def __exit__(self, *exc: object) -> None:
        self.k8s.call(lambda c: setattr(c, "exec_server", None))
        self.k8s.call(lambda c: setattr(c, "log_server", None))
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
        shutil.rmtree(self.rundir, ignore_errors=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pod in self.k8s.call(lambda c: c.pods()):
                self._sync(pod)
            time.sleep(0.05)

    def _set(self, pod: str, name: str, state: dict[str, Any]) -> None:
        mine = self.statuses.setdefault(pod, {})
        if mine.get(name, {}).get("state") != state:
            mine[name] = {"name": name, "state": state}
            self.history.setdefault((pod, name), []).append((time.monotonic(), state))

    def _waiting(self, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, Any] | None:
        """Why the container cannot start yet (a waiting state), or None."""
        name, key = container["name"], (pod["metadata"]["name"], container["name"])
        since = self.seen.setdefault(key, time.monotonic())
        stuck = next((r for prefix, r in self.image_errors.items() if name.startswith(prefix)),
                     None)
        if stuck:  # worded as pkg/kubelet/images/image_manager.go does
            return {"waiting": {"reason": stuck, "message": real.IMAGE_ERROR_MESSAGES[stuck]
                                .format(image=container["image"])}}
        for prefixes, reason, message in (
                (self.pulls, "ErrImagePull", f'rpc error: code = NotFound desc = failed to pull '
                                             f'and unpack image "{container["image"]}"'),
                (self.delays, "ContainerCreating", "")):
            delay = next((d for prefix, d in prefixes.items() if name.startswith(prefix)), 0.0)
            if time.monotonic() < since + delay:
                return {"waiting": {"reason": reason, **({"message": message} if message
                                                         else {})}}
        refused = real.run_as_non_root_refusal(pod, container,
                                               self.images.get(container["image"], 0))
        if refused:
            return {"waiting": {"reason": "CreateContainerConfigError", "message": refused}}
        return None

    def _sync(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        if name not in self.netns and all(pod_name != name for pod_name, _ in self.mains):
            return  # not a pod this kubelet runs
        for container in pod.get("spec", {}).get("ephemeralContainers") or ():
            key = (name, container["name"])
            if key not in self.procs:
                waiting = self._waiting(pod, container)
                if waiting is not None:
                    self._set(name, container["name"], waiting)
                    continue
                self.procs[key] = self._start(pod, container)
                self._set(name, container["name"], {
                    "running": {"startedAt": "2026-01-01T00:00:00Z"}})
            proc, report = self.procs[key]
            code = proc.poll()
            if code is not None and "terminated" not in self.statuses[name][container["name"]][
                    "state"]:
                message = report.read_text() if report.exists() else ""
                self._set(name, container["name"], {"terminated": {
                    "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                    "message": message}})
        seen_by = time.monotonic() - self.report_delay
        statuses = []
        for (pod_name, cname), changes in self.history.items():
            shown = [state for when, state in changes if when <= seen_by]
            if pod_name == name and shown:
                statuses.append({"name": cname, "state": shown[-1]})
        namespace = pod["metadata"]["namespace"]

        def write(c: Any) -> None:
            key = (PODS, namespace, name)
            if key in c.objects and not c.objects[key].deleted:
                c.objects[key].patch({"status": {"ephemeralContainerStatuses": statuses}})

        self.k8s.call(write)

    def _start(self, pod: dict[str, Any], container: dict[str, Any]
               ) -> tuple[subprocess.Popen[bytes], Path]:
        """Run the container in the pod's network namespace or, with targetContainerName, in
        the target container's process (and /proc mount) namespace, as the runtime does, as the
        user and with the capabilities its securityContext gives."""
        name = pod["metadata"]["name"]
        command = list(container["command"])
        assert command[:2] == ["python", "-m"], command
        report = self.rundir / f"{container['name']}.termination-log"
        report.touch()
        report.chmod(0o666)
        target = container.get("targetContainerName")
        enter = (["nsenter", "-t", str(self.mains[name, target]), "-p", "-m", "--"] if target
                 else ["ip", "netns", "exec", self.netns[name]])
        user = real.credentials(pod, container, self.images.get(container["image"], 0))
        slow = (["sh", "-c", f'sleep {self.cold_start}; exec "$@"', "sh"] if self.cold_start
                else [])
        argv = [*enter, *user, *slow, *image_python(user), "-m", command[2], "--report",
                str(report), *container["args"]]
        log = open(self.workdir / f"{container['name']}.log", "wb")  # noqa: SIM115
        try:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                    cwd="/"), report
        finally:
            log.close()

    def serve_log(self, namespace: str, pod: str, container: str) -> aiohttp.web.StreamResponse:
        """pods/log of an ephemeral container: what it printed (stdout and stderr)."""
        if (pod, container) not in self.procs:
            state = self.statuses.get(pod, {}).get(container, {}).get("state", {})
            return real.waiting_log(namespace, pod, container, (state.get("waiting") or {})
                                    .get("reason", "ContainerCreating"))
        path = self.workdir / f"{container}.log"
        return aiohttp.web.Response(text=path.read_text(errors="replace") if path.exists()
                                    else "", content_type="text/plain")

    # --- pods/exec
    async def serve_exec(self, raw: aiohttp.web.BaseRequest, namespace: str, pod: str,
                         container: str, command: list[str]) -> aiohttp.web.StreamResponse:
        """The exec websocket: the command's stdout and stderr, then its end on channel 3."""
        ws = aiohttp.web.WebSocketResponse(protocols=self.protocols)
        if not ws.can_prepare(raw).ok:
            return aiohttp.web.json_response({
                "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 400,
                "reason": "BadRequest", "message": "exec is served over a websocket only"},
                status=400)
        await ws.prepare(raw)
        self.negotiated.append(ws.ws_protocol)
        code, out, err = await asyncio.to_thread(self.run, pod, container, command)
        for channel, data in ((STDOUT, out), (STDERR, err if code is not None else b"")):
            if data:
                await ws.send_bytes(bytes([channel]) + data)
        await ws.send_bytes(bytes([ERROR]) + json.dumps(exec_status(command, code, err))
                            .encode())
        await ws.close()
        self.served += 1
        return ws

    def run(self, pod: str, container: str, command: list[str]
            ) -> tuple[int | None, bytes, bytes]:
        """Run argv in the container: (exit code, stdout, stderr); exit code None when it could
        not start (stderr says why)."""
        self.execs.append((pod, container, list(command)))
        main = self.mains.get((pod, container))
        if main is None:
            return None, b"", f"container {container} is not running".encode()
        binary = shutil.which(command[0], path=self.paths.get((pod, container),
                                                               os.environ.get("PATH", "")))
        if binary is None:
            return None, b"", ("OCI runtime exec failed: exec failed: unable to start "
                               f'container process: exec: "{command[0]}": executable file '
                               "not found in $PATH: unknown").encode()
        try:
            done = subprocess.run(["nsenter", "-t", str(main), "-p", "-m", "--", binary,
                                   *command[1:]], capture_output=True, timeout=EXEC_TIMEOUT,
                                  check=False)
        except subprocess.TimeoutExpired:
            return None, b"", f"did not end within {EXEC_TIMEOUT:g}s".encode()
        # killed by a signal (the namespace's init ended): the runtime reports 128 + signal
        code = done.returncode if done.returncode >= 0 else 128 - done.returncode
        return code, done.stdout, done.stderr


def image_python(user: list[str]) -> list[str]:
    """The python of the "image": the test's own, or for a non-root user (who cannot reach an
    interpreter under /root) the system's of the same version, given the test's packages."""
    if "--reuid=0" in user or os.access(sys.executable, os.X_OK, effective_ids=False) and \
            not Path(sys.executable).resolve().is_relative_to("/root"):
        return [sys.executable]
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    assert system.exists(), f"a non-root container needs {system}"
    paths = [sysconfig.get_paths()["purelib"], str(Path(__file__).resolve().parents[3])]
    return ["env", "PYTHONPATH=" + os.pathsep.join(paths), str(system)]


def exec_status(command: list[str], code: int | None, err: bytes) -> dict[str, Any]:
    """The metav1.Status sent on channel 3 when an exec ends, worded as the kubelet does."""
    head: dict[str, Any] = {"metadata": {}, "status": "Success" if code == 0 else "Failure"}
    if code == 0:
        return head
    if code is None:  # the runtime could not start it: a Failure without an exit code
        said = err.decode(errors="replace")
        return {**head, "reason": "InternalError", "message": said,
                "details": {"causes": [{"message": said}]}}
    return {**head, "reason": "NonZeroExitCode",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"{command}, exit code {code}",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def without_ephemeral(cluster: Cluster) -> None:
    """A cluster that does not serve pods/ephemeralcontainers (before 1.23, or gated off)."""
    cluster.ephemeral = False


def add_pod(k8s: Emulator, name: str, namespace: str = "shop",
            containers: tuple[str, ...] = ("app",)) -> dict[str, Any]:
    return k8s.call(lambda c: c.put(PODS, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1",
                 "containers": [{"name": n, "image": "app:1"} for n in containers]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}))
