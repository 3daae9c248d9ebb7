"""The ephemeral containers chaos adds to a pod, as plain data (no `kubernetes` import).

Three roles, all running the in-pod agent (chaos.adapters.kubernetes.inpod_agent) from one image:

    hold   holds a network or resource fault until its deadline (args carry the deadline)
    stop   the revert: asks `hold` to end over the pod's abstract socket, removes leftovers
    kill   container.kill: shares the target container's process namespace
           (targetContainerName) and signals its main process

The container spec is all the state a revert needs besides the pod's name and UID, so the
revert spec is data: the watchdog or `chaos recover` rebuilds the `stop` container from it.
Ephemeral containers carry no labels: the run id and deadline ride in their env and args, and
the name `chaos-<role>-<id>` marks them as ours in `kubectl describe pod`.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from chaos.adapters.base import RevertSpec
from chaos.faults import http
from chaos.model.experiment import FaultSpec, thaw

AGENT_MODULE = "chaos.adapters.kubernetes.inpod_agent"
COMMAND = ("python", "-m", AGENT_MODULE)
NAME_PREFIX = "chaos-"
IMAGE_ENV = "CHAOS_K8S_IMAGE"


@dataclass(frozen=True)
class PodRecipe:
    """How the agent holds a fault type inside a pod."""

    holder: Literal["kernel", "resource", "http"]  # the local mechanism the agent runs
    net_admin: bool  # tc / nft in the pod's network namespace: hold and stop need NET_ADMIN


# The pod fault types and how each is held: the kernel recipes (chaos.adapters.local.
# kernel_recipes) that need no filter the pod's network policy could not express, the burner
# workers, and every http.* fault (the HTTP fault proxy in the agent, behind an nft redirect of
# target.pods.port).
RECIPES: Mapping[str, PodRecipe] = {
    **dict.fromkeys(("network.latency", "network.loss", "network.corruption",
                     "network.bandwidth"), PodRecipe("kernel", net_admin=True)),
    **dict.fromkeys(("resource.cpu", "resource.memory"), PodRecipe("resource", net_admin=False)),
    **dict.fromkeys((fault.name for fault in http.FAULTS), PodRecipe("http", net_admin=True)),
}


def held_by(holder: str) -> tuple[str, ...]:
    return tuple(name for name, recipe in RECIPES.items() if recipe.holder == holder)


NETWORK_FAULTS = held_by("kernel")
RESOURCE_FAULTS = held_by("resource")
HTTP_FAULTS = held_by("http")
FILTERS = ("device", "host", "cidr", "port", "protocol", "direction")
KILL_HINT = ("the exec fallback needs a `kill` binary in the target container's image (procps "
             "or busybox) and a signal its main process handles; pod.delete always works")
# Time allowed for the image pull and start of the `hold` container: the agent ends at most this
# long after the fault's planned end, even when the node's clock is behind the runner's.
START_ALLOWANCE = 120.0

# The least privilege each role needs. Network faults need root with NET_ADMIN in the pod's
# network namespace (tc, nft): Pod Security "privileged" only. Resource faults run as the image's
# non-root user (the Dockerfile's USER) with nothing: they pass "restricted", and a pod's
# `runAsNonRoot: true` (which ephemeral containers inherit) does not stop them. container.kill:
# see kill_context.
AGENT_USER = 65532  # the Dockerfile's USER: numeric, so the kubelet can verify runAsNonRoot
NETWORK_CONTEXT: Mapping[str, Any] = {
    "runAsUser": 0, "runAsNonRoot": False, "allowPrivilegeEscalation": False,
    "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
}
PLAIN_CONTEXT: Mapping[str, Any] = {
    "runAsUser": AGENT_USER, "runAsGroup": AGENT_USER, "runAsNonRoot": True,
    "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def run_as(pod: Mapping[str, Any], container: str) -> tuple[int | None, int | None]:
    """The (uid, gid) a pod's container runs as, where its spec says (the container's
    securityContext over the pod's); None where only the image knows."""
    pod_sc = pod.get("spec", {}).get("securityContext") or {}
    own = next((c.get("securityContext") or {} for c in pod.get("spec", {}).get("containers")
                or () if c.get("name") == container), {})
    uid, gid = own.get("runAsUser", pod_sc.get("runAsUser")), own.get(
        "runAsGroup", pod_sc.get("runAsGroup"))
    return (None if uid is None else int(uid)), (None if gid is None else int(gid))


def kill_context(pod: Mapping[str, Any], container: str) -> dict[str, Any]:
    """The kill container's securityContext. kill(2) needs the sender's UID to match the
    target's, or CAP_KILL: so it runs as the target's user where the pod spec says which, with
    no capability ("restricted" allows that unless the user is root); otherwise as root with
    only KILL added ("baseline" allows KILL; "restricted" refuses root — set runAsUser)."""
    uid, gid = run_as(pod, container)
    plain = {"allowPrivilegeEscalation": False, "seccompProfile": {"type": "RuntimeDefault"}}
    if uid is None:
        return {"runAsUser": 0, "runAsNonRoot": False, **plain,
                "capabilities": {"add": ["KILL"], "drop": ["ALL"]}}
    return {"runAsUser": uid, **({"runAsGroup": gid} if gid is not None else {}),
            "runAsNonRoot": uid != 0, **plain, "capabilities": {"drop": ["ALL"]}}


@dataclass(frozen=True)
class InPodSettings:
    """How in-pod faults reach a pod: which image, and how long its start may take."""

    image: str
    pull_policy: str = "IfNotPresent"
    start_timeout: float = 60.0  # until the hold container runs (or fails) after the patch


def default_image() -> str:
    from chaos.adapters.kubernetes.rbac import DEFAULT_IMAGE

    return os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE


def new_id() -> str:
    """A short random injection id: container names, the agent's socket, nft table names."""
    return secrets.token_hex(6)


def container_name(role: str, injection_id: str) -> str:
    return f"{NAME_PREFIX}{role}-{injection_id}"


def target_filters(fault: FaultSpec) -> dict[str, Any]:
    """The kernel filters of a pod target (device, host, cidr, port, protocol, direction)."""
    sel = fault.target.selector
    return {k: thaw(sel[k]) for k in FILTERS if sel.get(k) is not None}


def agent_args(role: str, fault: FaultSpec, injection_id: str, deadline: float) -> list[str]:
    """The agent's arguments for `hold` or `stop` of a network or resource fault."""
    return [role, "--id", injection_id, "--name", fault.name, "--deadline", f"{deadline:.3f}",
            "--max-for", f"{deadline - time.time() + START_ALLOWANCE:.1f}",
            "--fault", fault.type,
            "--target", json.dumps(target_filters(fault), sort_keys=True),
            "--with", json.dumps(thaw(fault.params), sort_keys=True)]


def container(role: str, injection_id: str, args: list[str], settings: InPodSettings, *,
              run_id: str, deadline: float, net_admin: bool = False,
              target_container: str | None = None,
              security: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One ephemeral container, as the API takes it in spec.ephemeralContainers."""
    spec: dict[str, Any] = {
        "name": container_name(role, injection_id),
        "image": settings.image,
        "imagePullPolicy": settings.pull_policy,
        "command": list(COMMAND),
        "args": list(args),
        "env": [{"name": "CHAOS_RUN_ID", "value": run_id},
                {"name": "CHAOS_DEADLINE", "value": f"{deadline:.3f}"},
                {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
        "securityContext": thaw(security or (NETWORK_CONTEXT if net_admin else PLAIN_CONTEXT)),
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "stdin": False,
        "tty": False,
    }
    if target_container:
        spec["targetContainerName"] = target_container
    return spec


@dataclass(frozen=True)
class InPodSpec(RevertSpec):
    """Everything a revert needs, written to the ledger before the patch is sent: the pod (name
    and UID), the hold container and what it holds, so a `stop` container can be rebuilt from
    the spec alone; `connection` is the cluster to revert through (as the connection gives it)."""

    namespace: str = ""
    pod: str = ""
    uid: str = ""
    id: str = ""
    fault: str = ""
    name: str = ""
    target: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)  # the fault's `with`
    deadline: float = 0.0
    run_id: str = ""
    image: str = ""
    pull_policy: str = "IfNotPresent"
    container: str = ""
    action: str = "stop"
    connection: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**self.header(), "action": self.action, "connection": dict(self.connection),
                "namespace": self.namespace, "pod": self.pod, "uid": self.uid, "id": self.id,
                "fault": self.fault, "name": self.name, "target": dict(self.target),
                "with": dict(self.params), "deadline": self.deadline, "run_id": self.run_id,
                "image": self.image, "pull_policy": self.pull_policy,
                "container": self.container}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        cls.check_version(data)
        return cls(str(data["adapter"]), str(data["namespace"]), str(data["pod"]),
                   str(data["uid"]), str(data["id"]), str(data["fault"]), str(data["name"]),
                   dict(data.get("target") or {}), dict(data.get("with") or {}),
                   float(data["deadline"]), str(data.get("run_id") or ""),
                   str(data["image"]), str(data.get("pull_policy", "IfNotPresent")),
                   str(data["container"]), str(data.get("action", "stop")),
                   dict(data.get("connection") or {}))


def revert_spec(adapter: str, pod: Mapping[str, Any], fault: FaultSpec, injection_id: str,
                deadline: float, settings: InPodSettings, run_id: str) -> InPodSpec:
    """The spec of a `hold` container about to be added to `pod`."""
    return InPodSpec(adapter, pod["namespace"], pod["name"], pod["uid"], injection_id,
                     fault.type, fault.name, target_filters(fault), thaw(fault.params),
                     deadline, run_id, settings.image, settings.pull_policy,
                     container_name("hold", injection_id))


def stop_container(spec: InPodSpec, wait: float = 0.0) -> dict[str, Any]:
    """The `stop` container of a revert, rebuilt from the revert spec alone; `wait`: seconds it
    waits for the agent of a hold container that runs but may not listen yet."""
    args = ["stop", "--id", spec.id, "--name", spec.name,
            "--deadline", f"{spec.deadline:.3f}", "--max-for", "0",
            "--fault", spec.fault,
            "--target", json.dumps(spec.target, sort_keys=True),
            "--with", json.dumps(spec.params, sort_keys=True)]
    if wait > 0:
        args += ["--wait", f"{wait:g}"]
    settings = InPodSettings(spec.image, spec.pull_policy)
    return container("stop", f"{spec.id}-{secrets.token_hex(2)}", args, settings,
                     run_id=spec.run_id, deadline=spec.deadline,
                     net_admin=needs_net_admin(spec.fault))


def needs_net_admin(fault_type: str) -> bool:
    recipe = RECIPES.get(fault_type)
    return recipe is not None and recipe.net_admin
