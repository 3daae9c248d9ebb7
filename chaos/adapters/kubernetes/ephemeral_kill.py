"""container.kill: signal a container's main process from inside its pod.

An ephemeral container with `targetContainerName` joins the container's process namespace,
where the container's main process is PID 1; the agent's `kill` command signals it and says
what happened in its termination message. The kernel delivers to a namespace's PID 1 only the
signals it handles when they come from inside the namespace (never SIGKILL), so the agent
checks that first and refuses clearly instead of sending a signal that would do nothing; KILL is
refused before anything is sent. (Chaos Mesh and Litmus send SIGKILL from the node, through
the container runtime, with a privileged DaemonSet; chaos has none by design.)

Where the cluster does not serve ephemeral containers (404), the fallback is pods/exec of
`kill -s SIGNAL 1` in the target container itself (the image needs a `kill` binary). The fault
is instant: nothing to revert, and the revert spec says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

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
from chaos.adapters.kubernetes.selection import ClusterAdapter
from chaos.errors import FaultFailed, GuardRefused, PermissionDenied, UsageError, truncate
from chaos.model.experiment import FaultSpec

EXEC_TIMEOUT = 30.0


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


def _exec_kill(api: Any, namespace: str, pod: str, container: str, signal: str) -> str:
    """pods/exec `kill -s SIGNAL 1` (blocking; run in a thread): its output."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from kubernetes.stream import stream

    from chaos.adapters.kubernetes.connection import client_for

    core = client.CoreV1Api(client_for(api.conn))
    api.counts["create", "pods/exec"] += 1
    try:
        return str(stream(core.connect_get_namespaced_pod_exec, pod, namespace,
                          container=container, command=["kill", "-s", signal, "1"],
                          stderr=True, stdout=True, stdin=False, tty=False,
                          _request_timeout=EXEC_TIMEOUT))
    except ApiException as exc:
        raise api._mapped(exc, "create", "", "pods/exec", namespace) from exc


class ContainerKillAdapter(ClusterAdapter):
    name = "kubernetes.container.kill"
    target_kind = "pods"
    fault_types = ("container.kill",)

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        if fault.params.get("signal") == "KILL":
            raise UsageError(f"{fault.name}: SIGKILL cannot reach a container's main process "
                             "from inside its pod: it is PID 1 of the container's process "
                             "namespace, and the kernel drops SIGKILL sent to it from there "
                             "(chaos runs no privileged node agent that could send it from "
                             "outside)", hint="use `signal: TERM` (or another signal the app "
                             "handles), or pod.delete with `grace_period: 0s`")
        refs = await super().resolve(fault, scope)
        for ref in refs:
            target_container(fault, ref.identity)  # a wrong name is refused before anything
        return refs

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        ident = target.identity
        return {**self.spec_head(fault, "none"), "namespace": ident["namespace"],
                "pod": ident["name"], "uid": ident["uid"],
                "container": target_container(fault, ident),
                "signal": fault.params.get("signal") or "TERM", "id": eph.new_id()}

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        from chaos.adapters.kubernetes.selection import same_pod

        api = _api(spec)
        ident = {"namespace": spec["namespace"], "name": spec["pod"], "uid": spec["uid"]}
        where = f"container {spec['container']} of pod {spec['namespace']}/{spec['pod']}"
        pod = await same_pod(api, ident)
        if pod is None:
            raise FaultFailed(f"{fault.name}: pod {spec['namespace']}/{spec['pod']} vanished")
        if pod.get("spec", {}).get("hostPID"):
            # PID 1 of the pod's process namespace is the node's init
            raise GuardRefused(f"{fault.name}: pod {spec['namespace']}/{spec['pod']} uses the "
                               "node's process namespace (hostPID: true); PID 1 there is the "
                               "node's init, not the container's main process",
                               hint="use pod.delete")
        if pod.get("spec", {}).get("shareProcessNamespace"):
            # PID 1 of the shared namespace is the pod's pause process, not the container's
            raise GuardRefused(f"{fault.name}: pod {spec['namespace']}/{spec['pod']} shares "
                               "one process namespace between its containers "
                               "(shareProcessNamespace: true); chaos cannot tell the "
                               f"container {spec['container']}'s main process apart safely",
                               hint="use pod.delete, or process faults inside the pod")
        settings = settings_of(fault)
        container = eph.container("kill", spec["id"], ["kill", "--signal", spec["signal"]],
                                  settings, run_id=scope.run_id,
                                  deadline=0.0, target_container=spec["container"])
        try:
            await add_container(api, spec["namespace"], spec["pod"], container, pod)
        except EphemeralUnavailable:
            out = await asyncio.to_thread(_exec_kill, api, spec["namespace"], spec["pod"],
                                          spec["container"], spec["signal"])
            if out.strip():
                raise FaultFailed(f"{fault.name}: `kill -s {spec['signal']} 1` in {where} "
                                  f"said: {truncate(out, 200)}",
                                  hint=eph.KILL_HINT) from None
            return {**spec, "via": "exec"}
        state = await wait_container(api, ident, container["name"], settings.start_timeout,
                                     until_done=True)
        if state is None:
            return {**spec, "via": "ephemeral"}  # the pod went: the kill (or more) happened
        ended = state.get("terminated")
        if not ended:
            raise FaultFailed(f"{fault.name}: the kill container in {where} did not finish",
                              hint="check the image (kubernetes.image) can be pulled")
        # "killed:" also with exit 137: the main process's end takes its namespace with it
        if not str(ended.get("message", "")).startswith("killed:"):
            raise _agent_error(f"{fault.name} on {where}", ended)
        return {**spec, "via": "ephemeral", "result": str(ended.get("message", ""))}

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        return "nothing"  # a signal cannot be taken back; the kubelet restarts the container
