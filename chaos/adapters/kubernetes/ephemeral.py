"""In-pod faults: network shaping/dropping, CPU and memory load, HTTP faults and container.kill,
each done by an ephemeral container that runs the in-pod agent
(chaos.adapters.kubernetes.inpod_agent).

Why ephemeral containers: they join a running pod without restarting it, share its network
namespace (so tc and nft act on the pod's own eth0) and, with `targetContainerName`, a
container's process namespace — with no privileged DaemonSet and no node access. They cannot be
removed or killed through the API, so the fault's end lives *inside* the pod: the `hold`
container's arguments carry the deadline and the agent reverts at it by itself. An earlier
revert (the runner, its watchdog, `chaos recover`) adds a small `stop` container rebuilt from the
revert spec alone; it reaches the agent through the pod's abstract socket and removes leftovers.

    inject:  read pod (UID) -> patch pods/ephemeralcontainers (+hold) -> wait: running, then
             the agent's `ready:` line on pods/log | its end (the error) | failed
    revert:  read pod: gone/other UID -> "gone"; hold still starting -> wait (bounded) until
             it runs or ends; hold ended by itself -> "reverted";
             else patch (+stop) -> wait until stop terminates -> its exit code and message

    sweep:   `chaos recover --kubernetes` rebuilds the revert spec from a hold container's args
             (hold_spec) and reverts holds whose agent ended without reverting

Every wait is bounded; a pod that vanishes counts as reverted. docs/kubernetes-inpod.md says
why this design and what an image needs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

from chaos.adapters.base import RevertOutcome, Scope, TargetRef
from chaos.adapters.kubernetes import ephemeral_spec as eph
from chaos.adapters.kubernetes.selection import ClusterAdapter, api_of, api_of_spec
from chaos.errors import (
    ChaosError,
    FaultFailed,
    GuardRefused,
    PermissionDenied,
    RevertFailed,
    truncate,
)
from chaos.model.experiment import FaultSpec, frozen, thaw

POLL = 0.2
AGENT_START = 10.0  # from "running" until the agent listens (python imports), at most
READY_TIMEOUT = 60.0  # from "running" until the agent says `ready:` (a cold start on a busy node)
STRATEGIC = "application/strategic-merge-patch+json"
PSA_HINT = ("in-pod network faults need NET_ADMIN, which Pod Security 'baseline' and "
            "'restricted' forbid: run the experiment in a namespace labelled "
            "pod-security.kubernetes.io/enforce=privileged (e.g. a test namespace), exempt "
            "chaos's service account in the admission configuration, or use the proxy adapter "
            "in front of the service instead")
ROOT_HINT = ("the namespace's Pod Security level ('restricted') refuses a container running as "
             "root: for container.kill, set runAsUser on the target container (or its pod) so "
             "chaos runs the kill container as that user; docs/kubernetes.md lists the level "
             "each fault needs")
LEVEL_HINT = ("the namespace's Pod Security level refuses the container: docs/kubernetes.md "
              "lists the level each fault needs; label the namespace "
              "pod-security.kubernetes.io/enforce accordingly or exempt chaos's service account")
NONROOT_HINT = ("the pod sets runAsNonRoot: true, which its ephemeral containers inherit, and "
                "this one would run as root: chaos sets each container's user itself, so check "
                "that no admission webhook removed its runAsUser or runAsNonRoot "
                "(`kubectl get pod -o yaml`)")
IMAGE_HINT = ("check `kubernetes: {image: ...}` (the image needs python and chaos: build it "
              "from the repository's Dockerfile) and that the node can pull it")
# Waiting reasons that do not clear by waiting: the kubelet's image errors
# (pkg/kubelet/images/types.go) and container-config errors (pkg/kubelet/kuberuntime).
IMAGE_ERRORS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                "ImageInspectError")
CONFIG_ERRORS = ("CreateContainerConfigError", "CreateContainerError")
NO_EPHEMERAL_HINT = ("ephemeral containers are served by Kubernetes 1.23+ (on by default since "
                     "1.25); on older clusters use pod.delete, or network.partition (a "
                     "NetworkPolicy)")


class EphemeralUnavailable(PermissionDenied):
    hint = NO_EPHEMERAL_HINT


class PodVanished(FaultFailed):
    """The pod was deleted between reading it and adding the container (a 404 naming it)."""


def _admission_hint(text: str) -> str:
    if "NET_ADMIN" in text:
        return PSA_HINT
    if '"KILL"' in text or "runAsNonRoot" in text or "runAsUser=0" in text:
        return ROOT_HINT  # the kill container as root with KILL: the app's user is unknown
    return LEVEL_HINT


def _api(spec_or_fault: Mapping[str, Any] | FaultSpec) -> Any:
    if isinstance(spec_or_fault, FaultSpec):
        return api_of(spec_or_fault)
    return api_of_spec(spec_or_fault)


def settings_of(fault: FaultSpec) -> eph.InPodSettings:
    image = fault.kubernetes.get("image") if fault.kubernetes else None
    return eph.InPodSettings(str(image or eph.default_image()))


def _statuses(pod: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {s.get("name"): s for s in pod.get("status", {}).get("ephemeralContainerStatuses")
            or ()}


async def add_container(api: Any, namespace: str, name: str, container: Mapping[str, Any],
                        pod: Mapping[str, Any]) -> None:
    """Patch the pod's ephemeral containers (the whole list: merged by name, never replaced)."""
    existing = list(pod.get("spec", {}).get("ephemeralContainers") or ())
    from chaos.adapters.kubernetes.api import Gone

    try:
        await api.call("patch", "", "pods/ephemeralcontainers", namespace,
                       "CoreV1Api.patch_namespaced_pod_ephemeralcontainers", name, namespace,
                       {"spec": {"ephemeralContainers": [*existing, dict(container)]}},
                       _content_type=STRATEGIC)
    except Gone as exc:
        if exc.named:  # the API names the missing pod; an unserved subresource names nothing
            raise PodVanished(f"pod {namespace}/{name} was deleted before chaos's ephemeral "
                              f"container could be added ({exc})") from exc
        raise EphemeralUnavailable(f"pod {namespace}/{name}: this cluster does not serve "
                                   f"pods/ephemeralcontainers ({exc})") from exc
    except PermissionDenied as exc:
        text = str(exc)
        if "PodSecurity" in text or "NET_ADMIN" in text or "capabilities" in text:
            raise PermissionDenied(f"pod {namespace}/{name}: admission refused chaos's "
                                   f"ephemeral container: {truncate(text, 240)}",
                                   hint=_admission_hint(text)) from exc
        raise
    except FaultFailed as exc:  # 422 Invalid, or a policy webhook's refusal
        raise FaultFailed(f"pod {namespace}/{name}: the API refused chaos's ephemeral "
                          f"container: {truncate(str(exc), 240)}",
                          hint=PSA_HINT if "NET_ADMIN" in str(exc) else "") from exc


async def wait_container(api: Any, ident: Mapping[str, Any], container: str, timeout: float,
                         *, until_done: bool,
                         retried: tuple[str, ...] = ()) -> Mapping[str, Any] | None:
    """The container's state once it runs (or, with until_done, has terminated); None when the
    pod is gone. Refuses image-pull and config errors at once instead of waiting them out,
    except the `retried` reasons (the kubelet retries pulls: a container may start late)."""
    from chaos.adapters.kubernetes.selection import same_pod

    end = time.monotonic() + timeout
    while True:
        pod = await same_pod(api, ident)
        if pod is None:
            return None
        state = _statuses(pod).get(container, {}).get("state") or {}
        if "terminated" in state or ("running" in state and not until_done):
            return dict(state)
        reason = (state.get("waiting") or {}).get("reason", "")
        if (reason in IMAGE_ERRORS or reason in CONFIG_ERRORS) and reason not in retried:
            message = (state.get("waiting") or {}).get("message", "")
            raise FaultFailed(f"ephemeral container {container} in {ident['namespace']}/"
                              f"{ident['name']} cannot start: {reason}: {truncate(message, 200)}",
                              hint=NONROOT_HINT if "runAsNonRoot" in message or
                              "non-root" in message else IMAGE_HINT)
        if time.monotonic() > end:
            last = str((state.get("waiting") or {}).get("message") or "")
            said = f" (last {reason}: {truncate(last, 160)})" if reason in retried else ""
            return {"waiting": {"reason": "Timeout", "message": f"not started within "
                                                              f"{timeout:g}s{said}"}}
        await asyncio.sleep(POLL)


async def wait_ready(api: Any, ident: Mapping[str, Any], container: str,
                     timeout: float) -> Mapping[str, Any] | None:
    """Once the container runs: its state when the agent has said `ready:` on its log (the
    fault is held) or has ended (its termination message says why); None when the pod is gone.
    "running" alone says little: the kubelet reports it about a second late (its PLEG relists
    every second) and the agent is still importing then, so a failure would come after it."""
    from chaos.adapters.kubernetes.api import ApiFailed, Gone
    from chaos.adapters.kubernetes.selection import same_pod

    end = time.monotonic() + timeout
    while True:
        pod = await same_pod(api, ident)
        if pod is None:
            return None
        state = _statuses(pod).get(container, {}).get("state") or {}
        if "terminated" in state:
            return dict(state)
        try:
            log = await api.call("get", "", "pods/log", ident["namespace"],
                                 "CoreV1Api.read_namespaced_pod_log", ident["name"],
                                 ident["namespace"], container=container, limit_bytes=16384,
                                 _as_text=True)
        except (Gone, ApiFailed):  # 400 while the container starts; the pod's end shows above
            log = ""
        if any(line.startswith("ready:") for line in log.splitlines()):
            return dict(state)
        if time.monotonic() > end:
            return {"waiting": {"reason": "NotReady", "message": f"the agent did not say it "
                                f"holds the fault within {timeout:g}s of starting"}}
        await asyncio.sleep(POLL)


async def _started(api: Any, ident: Mapping[str, Any], container: str,
                   timeout: float) -> Mapping[str, Any] | None:
    """The container's state once it runs or has ended, waiting through image-pull errors (the
    kubelet retries those); its waiting state after `timeout`; None when the pod is gone."""
    end = time.monotonic() + timeout
    while True:
        try:
            state = await wait_container(api, ident, container,
                                         max(0.0, end - time.monotonic()), until_done=False)
        except FaultFailed as exc:
            state = {"waiting": {"reason": "ImagePull", "message": str(exc)}}
        if state is None or "running" in state or "terminated" in state or \
                time.monotonic() >= end:
            return state
        await asyncio.sleep(POLL)


def _agent_error(where: str, terminated: Mapping[str, Any]) -> ChaosError:
    """The agent's termination message as an error; its "(what to do: ...)" becomes the hint."""
    message = str(terminated.get("message") or terminated.get("reason") or "no message")
    said, _, todo = message.removeprefix("error: ").partition(" (what to do: ")
    text = f"{where}: {truncate(said, 400)}"
    hint = todo.removesuffix(")") or "docs/kubernetes-inpod.md lists the agent's failures"
    if int(terminated.get("exitCode", 1)) == 2:  # the agent refused: bad environment or input
        return PermissionDenied(text, hint=hint)
    return FaultFailed(text, hint=hint)


class InPodAdapter(ClusterAdapter):
    """Network and resource faults held by the agent in a `hold` ephemeral container."""

    abstract = True
    target_kind = "pods"
    net_admin: ClassVar[bool] = False

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        refs = await super().resolve(fault, scope)
        return [TargetRef(r.kind, r.label, r.identity, f"{r.lock_key}:{self.name}", r.pids)
                for r in refs]

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        return replace(eph.revert_spec(self.name, target.identity, fault, eph.new_id(),
                                       round(time.time() + fault.duration, 3),
                                       settings_of(fault), run_id=""),
                       connection=self.connection_of(fault)).to_json()

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        from chaos.adapters.kubernetes.selection import same_pod

        api = _api(spec)
        typed = replace(eph.InPodSpec.from_json(spec), run_id=scope.run_id)
        ident = {"namespace": typed.namespace, "name": typed.pod, "uid": typed.uid}
        where = f"pod {typed.namespace}/{typed.pod}"
        pod = await same_pod(api, ident)
        if pod is None:
            raise FaultFailed(f"{where} vanished before {fault.name} could be injected")
        if self.net_admin and pod.get("spec", {}).get("hostNetwork"):
            raise GuardRefused(f"{fault.name}: {where} uses the node's network (hostNetwork: "
                               "true); an in-pod network fault would shape the whole node",
                               hint="select pods without hostNetwork (add a label selector), "
                                    "or use the interface target on that node on purpose")
        settings = settings_of(fault)
        args = eph.agent_args("hold", fault, typed.id, typed.deadline)
        container = eph.container("hold", typed.id, args, settings, run_id=typed.run_id,
                                  deadline=typed.deadline, net_admin=self.net_admin)
        await add_container(api, typed.namespace, typed.pod, container, pod)
        state = await wait_container(api, ident, typed.container, settings.start_timeout,
                                     until_done=False)
        if state is not None and "running" in state:
            state = await wait_ready(api, ident, typed.container, READY_TIMEOUT)
        if state is None:
            raise FaultFailed(f"{where} vanished while {fault.name} was being injected")
        ended = state.get("terminated")
        if ended and str(ended.get("message", "")).startswith(("reverted", "ended")):
            return typed.to_json()  # a short fault: held and ended at its deadline already
        if ended:
            raise _agent_error(f"{fault.name} in {where}", ended)
        if "running" not in state:
            raise FaultFailed(f"{fault.name} in {where}: the ephemeral container "
                              f"{typed.container} did not start: "
                              f"{(state.get('waiting') or {}).get('message', '')}")
        return typed.to_json()

    async def revert(self, data: Mapping[str, Any]) -> RevertOutcome:
        from chaos.adapters.kubernetes.selection import same_pod

        spec = eph.InPodSpec.from_json(data)
        api = _api(data)
        ident = {"namespace": spec.namespace, "name": spec.pod, "uid": spec.uid}
        pod = await same_pod(api, ident)
        if pod is None:
            return "gone"  # the pod's network namespace and processes went with it
        names = {c.get("name") for c in pod.get("spec", {}).get("ephemeralContainers") or ()}
        if spec.container not in names:
            return "nothing"  # the patch never arrived
        settings = eph.InPodSettings(spec.image)
        state = _statuses(pod).get(spec.container, {}).get("state") or {}
        if "running" not in state and "terminated" not in state:
            # still starting (an image pull; an inject that timed out): a stop now would find
            # no agent, and the hold would start after it and hold the fault to its deadline
            state = await _started(api, ident, spec.container, settings.start_timeout)
            pod = await same_pod(api, ident)
            if state is None or pod is None:
                return "gone"
            if "running" not in state and "terminated" not in state:
                if time.time() >= spec.deadline:
                    return "nothing"  # should it start now, the agent ends at once
                raise RevertFailed(
                    f"pod {spec.namespace}/{spec.pod}: the ephemeral container "
                    f"{spec.container} has not started within {settings.start_timeout:g}s "
                    f"({(state.get('waiting') or {}).get('reason', 'waiting')}); should it "
                    f"start, it holds {spec.fault} until its deadline")
        done = state.get("terminated")
        if done and str(done.get("message", "")).startswith(("reverted", "ended")):
            return "reverted"  # the agent ended it by itself (deadline, signal)
        # a running hold may still be importing: its socket comes before it injects anything
        wait = AGENT_START if "running" in state else 0.0
        stop = eph.stop_container(spec, wait)
        try:
            await add_container(api, spec.namespace, spec.pod, stop, pod)
        except PodVanished:
            return "gone"
        from chaos.adapters.kubernetes.inpod_agent import STOP_TIMEOUT

        state = await wait_container(api, ident, stop["name"],
                                     settings.start_timeout + wait + STOP_TIMEOUT,
                                     until_done=True)
        if state is None:
            return "gone"
        ended = state.get("terminated")
        if not ended:
            raise RevertFailed(f"pod {spec.namespace}/{spec.pod}: the stop container "
                               f"{stop['name']} did not finish: "
                               f"{(state.get('waiting') or {}).get('message', '')}; the agent "
                               f"still ends the fault at its deadline")
        if int(ended.get("exitCode", 1)) != 0:
            raise RevertFailed(f"pod {spec.namespace}/{spec.pod}: stop failed: "
                               f"{truncate(str(ended.get('message', '')), 300)}")
        return "reverted"


class PodNetworkAdapter(InPodAdapter):
    name = "kubernetes.pod.network"
    fault_types = eph.NETWORK_FAULTS
    net_admin = True
    uses_traffic_fields = True

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        from chaos.adapters.local.kernel import InterfaceAdapter

        # the agent holds the fault with the kernel adapter: its refusals (a port filter on a
        # shaping fault, ingress shaping, a bad CIDR) come here, before any pod is patched
        InterfaceAdapter().check_request(fault, fault.target.selector)
        return await super().resolve(fault, scope)


class PodResourceAdapter(InPodAdapter):
    name = "kubernetes.pod.resource"
    fault_types = eph.RESOURCE_FAULTS


class PodHttpAdapter(InPodAdapter):
    """http.* in pods: the agent runs the HTTP fault proxy and redirects target.pods.port to it
    (chaos.adapters.kubernetes.inpod_http); the redirect is an nft table, hence NET_ADMIN."""

    name = "kubernetes.pod.http"
    fault_types = eph.HTTP_FAULTS
    net_admin = True
    uses_traffic_fields = True

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        # `percent` draws from the run's seed, as on the proxy target: a rerun hits the same
        # requests (the seed rides in the agent's --with, where the proxy's rule reads it)
        seed = f"{scope.seed}:{fault.name}:{spec['pod']}"
        seeded = replace(fault, params=frozen({**thaw(fault.params), "seed": seed}))
        return await super().inject(seeded, target, spec, scope)


# the pod adapter of each way the agent holds a fault (ephemeral_spec.RECIPES)
BY_HOLDER: Mapping[str, type[InPodAdapter]] = {
    "kernel": PodNetworkAdapter, "resource": PodResourceAdapter, "http": PodHttpAdapter}


def _adapter_for(fault_type: str) -> InPodAdapter | None:
    recipe = eph.RECIPES.get(fault_type)
    return BY_HOLDER[recipe.holder]() if recipe is not None else None


def hold_spec(pod: Mapping[str, Any], hold: Mapping[str, Any],
              connection: Mapping[str, Any]) -> eph.InPodSpec | None:
    """The revert spec of a `hold` container, rebuilt from its args and env alone (for
    `chaos recover --kubernetes`, which has no ledger); None when it is not one of ours."""
    from chaos.adapters.kubernetes.inpod_agent import parser

    argv = [str(a) for a in hold.get("args") or ()]
    if not argv or argv[0] != "hold":
        return None
    try:
        args = parser().parse_args(argv)
        target, params = json.loads(args.target), json.loads(args.params)
    except (SystemExit, ValueError):
        return None
    adapter = _adapter_for(args.fault)
    if adapter is None:
        return None
    env = {e.get("name"): e.get("value") for e in hold.get("env") or ()}
    meta = pod.get("metadata", {})
    return eph.InPodSpec(
        adapter.name, str(meta.get("namespace")), str(meta.get("name")), str(meta.get("uid")),
        args.id, args.fault, args.name, target, params, args.deadline,
        str(env.get("CHAOS_RUN_ID") or ""), str(hold.get("image", "")),
        str(hold.get("imagePullPolicy", "IfNotPresent")), str(hold.get("name")),
        connection=dict(connection))


def _ended(state: Mapping[str, Any], *said: str) -> bool:
    done = state.get("terminated") or {}
    return bool(done) and str(done.get("message", "")).startswith(said)


async def sweep_holds(api: Any, pod: Mapping[str, Any], *,
                      everything: bool) -> list[tuple[str, str, str]]:
    """(what, run, outcome) for each of chaos's `hold` containers in a pod that may have left a
    fault behind: an agent killed without reverting (its rules stay: SIGKILL, OOM) gets a stop
    container now; one still running past its deadline (or any, with `everything`) too. Holds
    that ended by themselves, or that a stop already ended, are left out."""
    statuses = _statuses(pod)
    meta = pod.get("metadata", {})
    found = []
    for hold in pod.get("spec", {}).get("ephemeralContainers") or ():
        name = str(hold.get("name", ""))
        spec = hold_spec(pod, hold, api.conn.as_spec()) if name.startswith(
            eph.container_name("hold", "")) else None
        if spec is None:
            continue
        state = statuses.get(name, {}).get("state") or {}
        stops = [s.get("state") or {} for n, s in statuses.items()
                 if str(n).startswith(eph.container_name("stop", spec.id) + "-")]
        if _ended(state, "reverted", "ended") or any(
                _ended(s, "stopped") and int(s["terminated"].get("exitCode", 1)) == 0
                for s in stops):
            continue
        what = f"container {meta.get('namespace')}/{meta.get('name')}/{name} ({spec.fault})"
        failed = [str(s["terminated"].get("message", "")) for s in stops if "terminated" in s]
        if failed and not everything:  # one stop per sweep would pile containers up in the pod
            found.append((what, spec.run_id, f"failed (a stop container already failed: "
                          f"{truncate(failed[-1], 160)}; --force tries again)"))
            continue
        if "terminated" not in state and not everything and time.time() < spec.deadline:
            found.append((what, spec.run_id, "skipped (held until "
                          f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(spec.deadline))})"))
            continue
        adapter = _adapter_for(spec.fault)
        assert adapter is not None  # hold_spec returned a spec
        try:
            outcome: str = await adapter.revert(spec.to_json())
        except ChaosError as exc:  # the other pods are still swept
            outcome = f"failed ({truncate(str(exc), 240)})"
        found.append((what, spec.run_id, outcome))
    return found
