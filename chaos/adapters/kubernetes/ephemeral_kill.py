"""container.kill: signal a container's main process from inside its pod.

An ephemeral container with `targetContainerName` joins the container's process namespace,
where the container's main process is PID 1; the agent's `kill` command signals it and says
what happened in its termination message. The kernel delivers to a namespace's PID 1 only the
signals it handles when they come from inside the namespace (never SIGKILL), so the agent
checks that first and refuses clearly instead of sending a signal that would do nothing; KILL is
refused before anything is sent. (Chaos Mesh and Litmus send SIGKILL from the node, through
the container runtime, with a privileged DaemonSet; chaos has none by design.)

kill(2) also needs the sender's UID to match the target's, or CAP_KILL: the container runs as
the target container's user where the pod spec says it (no capability: Pod Security
"restricted" allows it), else as root with only KILL ("baseline"). It carries a deadline:
started later (a pull the kubelet retried), it sends nothing, so a kill reported failed never
fires afterwards.

Where the cluster does not serve ephemeral containers (404), the fallback is pods/exec in the
target container itself: `cat /proc/1/status` (the same refusal of a signal PID 1 does not
handle) and `kill -s SIGNAL 1` (the image needs a `kill` binary), each judged by the exit status
the API sends on the exec's error channel. The fault is instant: nothing to revert, and the
revert spec says so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from chaos.adapters.base import RevertOutcome, Scope, TargetRef
from chaos.adapters.kubernetes import ephemeral_spec as eph
from chaos.adapters.kubernetes.ephemeral import (
    EphemeralUnavailable,
    _agent_error,
    _api,
    add_container,
    settings_of,
    wait_container,
)
from chaos.adapters.kubernetes.selection import ClusterAdapter, ClusterSpec, refuse_by_rules
from chaos.errors import FaultFailed, GuardRefused, PermissionDenied, truncate
from chaos.model.experiment import FaultSpec

EXEC_TIMEOUT = 30.0
# The kill container's deadline, from the patch: it signals nothing after it. The inject waits
# that long (through image pulls the kubelet retries) plus CLOCK_SKEW for a node clock behind
# ours, so a fault reported failed never fires later.
KILL_START = 60.0
CLOCK_SKEW = 5.0
PULLS = ("ErrImagePull", "ImagePullBackOff")
HANDSHAKE_TIMEOUT = 30.0  # the websocket upgrade, and any single read once it is open


@dataclass(frozen=True)
class KillSpec(ClusterSpec):
    """Nothing to undo (a signal cannot be taken back): which container of which pod got which
    signal, the kill container's id, and once sent, how (`ephemeral` or `exec`) and what the
    agent said, for the journal."""

    namespace: str = ""
    pod: str = ""
    uid: str = ""
    container: str = ""
    signal: str = "TERM"
    id: str = ""
    via: str | None = None
    result: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = {**self.head(), "namespace": self.namespace, "pod": self.pod, "uid": self.uid,
                "container": self.container, "signal": self.signal, "id": self.id}
        sent = {"via": self.via, "result": self.result}
        return {**data, **{k: v for k, v in sent.items() if v is not None}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        cls.check_version(data)
        via, result = data.get("via"), data.get("result")
        return cls(*cls.head_of(data), str(data["namespace"]), str(data["pod"]),
                   str(data["uid"]), str(data["container"]), str(data.get("signal") or "TERM"),
                   str(data.get("id") or ""), None if via is None else str(via),
                   None if result is None else str(result))


def target_container(fault: FaultSpec, identity: Mapping[str, Any]) -> str:
    named = fault.params.get("container")
    containers = list(identity.get("containers") or ())
    if named:
        if containers and named not in containers:
            raise PermissionDenied(f"{fault.name}: pod {identity['namespace']}/"
                                   f"{identity['name']} has no container {named!r} (it has "
                                   f"{', '.join(containers)})",
                                   hint="fix with.container, or leave it out for the first one")
        return str(named)
    if not containers:
        raise FaultFailed(f"{fault.name}: pod {identity['namespace']}/{identity['name']} "
                          "lists no containers")
    return str(containers[0])


def _exec(api: Any, namespace: str, pod: str, container: str,
          command: list[str]) -> tuple[int | None, str, str]:
    """pods/exec of `command` in the container (blocking; run in a thread): its exit code (None
    when the API gave none), its stdout and stderr, and the API's failure message if any."""
    import json

    import websocket
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from kubernetes.stream import stream
    from kubernetes.stream.ws_client import ERROR_CHANNEL

    from chaos.adapters.kubernetes.api import Unreachable
    from chaos.adapters.kubernetes.connection import client_for, websocket_handshake_within

    core = client.CoreV1Api(client_for(api.conn))
    api.counts["create", "pods/exec"] += 1
    try:
        with websocket_handshake_within(HANDSHAKE_TIMEOUT):
            ws = stream(core.connect_get_namespaced_pod_exec, pod, namespace,
                        container=container, command=command, stderr=True, stdout=True,
                        stdin=False, tty=False, _preload_content=False)
    except ApiException as exc:
        if isinstance(exc.__context__, (websocket.WebSocketTimeoutException, TimeoutError)):
            raise Unreachable(f"pods/exec in {namespace}/{pod}: the Kubernetes API at "
                              f"{core.api_client.configuration.host} did not answer the exec's "
                              f"websocket upgrade within {HANDSHAKE_TIMEOUT:g}s") from exc
        exc = _handshake(exc)
        # which verb the API server checked (get; create too from 1.35) is in its own words
        verb = re.search(r"cannot (\w+) resource", str(exc.body or ""))
        raise api._mapped(exc, verb.group(1) if verb else "get", "", "pods/exec",
                          namespace) from exc
    try:
        try:
            ws.run_forever(timeout=EXEC_TIMEOUT)
        except (websocket.WebSocketException, OSError) as exc:
            return None, "", f"its connection broke: {type(exc).__name__}: {exc}"
        if ws.is_open():
            return None, "", f"it did not end within {EXEC_TIMEOUT:g}s"
        error = ws.read_channel(ERROR_CHANNEL)  # before read_all(), which drops it
        output = str(ws.read_all())
    finally:
        ws.close()
        ws.sock.shutdown()  # websocket-client's close() leaves the socket open when the API
        # closed first (it always does once the command ended)
    try:
        status = json.loads(error) if error else {}
    except ValueError:
        status = {"message": error}
    if status.get("status") == "Success":
        return 0, output, ""
    causes = (status.get("details") or {}).get("causes") or ()
    code = next((c.get("message") for c in causes if c.get("reason") == "ExitCode"), None)
    message = str(status.get("message") or "the exec ended without an exit status")
    return (int(code) if code is not None and str(code).isdigit() else None), output, message


def _handshake(exc: Any) -> Any:
    """The client reports a refused websocket upgrade (403, 404) as status 0; the HTTP status
    and the API's Status body are on the websocket exception it wraps."""
    cause = exc.__context__
    if not exc.status and getattr(cause, "status_code", None):
        exc.status, exc.body = cause.status_code, getattr(cause, "resp_body", None)
    exc.body = exc.body or exc.reason
    return exc


def _exec_kill(api: Any, name: str, spec: KillSpec) -> str:
    """The fallback without ephemeral containers (blocking; run in a thread): read PID 1's
    signal handlers with `cat`, refuse a signal it does not handle (as the agent does), then
    `kill -s SIGNAL 1`. What it did, as the agent would say it."""
    from chaos.adapters.kubernetes.inpod_agent import dropped, handled_in

    ns, pod, container, signal = spec.namespace, spec.pod, spec.container, spec.signal
    where = f"container {container} of pod {ns}/{pod}"
    code, status, failure = _exec(api, ns, pod, container, ["cat", "/proc/1/status"])
    what, unchecked = "pid 1", ""
    if code == 0:
        what = next((line.split(":", 1)[1].strip() for line in status.splitlines()
                     if line.startswith("Name:")), what)
        catches = handled_in(status)
        if signal not in catches:
            refused = dropped(what, signal, catches)
            raise PermissionDenied(f"{name} on {where}: {refused}", hint=refused.hint)
    else:  # no `cat` in the image: send it anyway, and say the handlers were not read
        unchecked = f"; its handlers could not be read: {truncate(failure or status, 120)}"
    code, output, failure = _exec(api, ns, pod, container, ["kill", "-s", signal, "1"])
    # 137: the kill process itself was ended by the kernel with the namespace's PID 1
    if code not in (0, 137):
        said = "; ".join(filter(None, (failure, truncate(output.strip(), 200))))
        raise FaultFailed(f"{name}: `kill -s {signal} 1` through pods/exec in {where} failed"
                          f"{f' (exit code {code})' if code is not None else ''}: {said}",
                          hint=eph.KILL_HINT)
    return f"killed: sent SIG{signal} to pid 1 ({what}) through pods/exec{unchecked}"


class ContainerKillAdapter(ClusterAdapter):
    name = "kubernetes.container.kill"
    target_kind = "pods"
    fault_types = ("container.kill",)

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        from chaos.faults.kubernetes import kill_check

        # (chaos runs no privileged node agent that could send SIGKILL from outside the pod)
        refuse_by_rules(fault, kill_check, hint="use `signal: TERM` (or another signal the app "
                                                "handles), or pod.delete with a short `grace_period` (1s)")
        refs = await super().resolve(fault, scope)
        for ref in refs:
            target_container(fault, ref.identity)  # a wrong name is refused before anything
        return refs

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        ident = target.identity
        return KillSpec(self.name, "none", self.connection_of(fault), ident["namespace"],
                        ident["name"], ident["uid"], target_container(fault, ident),
                        fault.params.get("signal") or "TERM", eph.new_id()).to_json()

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        from chaos.adapters.kubernetes.selection import same_pod

        api = _api(spec)
        kill = KillSpec.from_json(spec)
        ident = {"namespace": kill.namespace, "name": kill.pod, "uid": kill.uid}
        shown = f"{kill.namespace}/{kill.pod}"
        where = f"container {kill.container} of pod {shown}"
        pod = await same_pod(api, ident)
        if pod is None:
            raise FaultFailed(f"{fault.name}: pod {shown} vanished")
        if pod.get("spec", {}).get("hostPID"):
            # PID 1 of the pod's process namespace is the node's init
            raise GuardRefused(f"{fault.name}: pod {shown} uses the "
                               "node's process namespace (hostPID: true); PID 1 there is the "
                               "node's init, not the container's main process",
                               hint="use pod.delete")
        if pod.get("spec", {}).get("shareProcessNamespace"):
            # PID 1 of the shared namespace is the pod's pause process, not the container's
            raise GuardRefused(f"{fault.name}: pod {shown} shares "
                               "one process namespace between its containers "
                               "(shareProcessNamespace: true); chaos cannot tell the "
                               f"container {kill.container}'s main process apart safely",
                               hint="use pod.delete, or process faults inside the pod")
        settings = settings_of(fault)
        deadline = time.time() + KILL_START
        container = eph.container("kill", kill.id, ["kill", "--signal", kill.signal,
                                                    "--deadline", f"{deadline:.3f}"],
                                  settings, run_id=scope.run_id, deadline=deadline,
                                  target_container=kill.container,
                                  security=eph.kill_context(pod, kill.container))
        try:
            await add_container(api, kill.namespace, kill.pod, container, pod)
        except EphemeralUnavailable:
            result = await asyncio.to_thread(_exec_kill, api, fault.name, kill)
            return dataclasses.replace(kill, via="exec", result=result).to_json()
        state = await wait_container(api, ident, container["name"],
                                     deadline + CLOCK_SKEW - time.time(), until_done=True,
                                     retried=PULLS)
        if state is None:  # the pod went: the kill (or more) happened
            return dataclasses.replace(kill, via="ephemeral").to_json()
        ended = state.get("terminated")
        if not ended:
            raise FaultFailed(f"{fault.name}: the kill container in {where} did not run "
                              f"before its deadline: "
                              f"{(state.get('waiting') or {}).get('message', '')}; it sends "
                              "nothing after it, should it start now",
                              hint="check the image (kubernetes.image) can be pulled")
        # "killed:" also with exit 137: the main process's end takes its namespace with it
        if not str(ended.get("message", "")).startswith("killed:"):
            raise _agent_error(f"{fault.name} on {where}", ended)
        return dataclasses.replace(kill, via="ephemeral",
                                   result=str(ended.get("message", ""))).to_json()

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        KillSpec.from_json(spec)  # a version this chaos cannot read is refused all the same
        return "nothing"  # a signal cannot be taken back; the kubelet restarts the container
