"""What a real API server and kubelet do to ephemeral containers, that kmock alone does not.

The emulator (emulator.py) and its kubelet (inpod_kubelet.py) call these; each behaviour cites
the upstream source it follows (kubernetes/kubernetes, release-1.35, unless said):

- Pod Security admission on pods/ephemeralcontainers: the whole pod (containers, init and
  ephemeral ones) is checked against the namespace's `pod-security.kubernetes.io/enforce` level
  (staging/src/k8s.io/pod-security-admission/admission/admission.go, ValidatePod: of the pod
  subresources only "ephemeralcontainers" is evaluated; policy/check_*.go for each rule).
- 404s: a pod that is not there is a NotFound Status naming it (details.name, details.kind),
  an unserved subresource one that names nothing — what `kubectl debug` tells apart
  (staging/src/k8s.io/kubectl/pkg/cmd/debug/debug.go, debugByEphemeralContainer).
- pods/exec authorization: the client's websocket GET is authorized as `get` through 1.34; from
  1.35 a `create` check comes on top (feature gate AuthorizePodWebsocketUpgradeCreatePermission,
  KEP-4006; CHANGELOG-1.35).
- The kubelet's runAsNonRoot check of the effective securityContext (the pod's, overridden by
  the container's) against runAsUser or the image's user
  (pkg/kubelet/kuberuntime/security_context_others.go, verifyRunAsNonRoot): a waiting
  CreateContainerConfigError.
- The user and capabilities a container's process gets: runAsUser (else the image's USER, root
  when it has none); the runtime's default capability set minus `drop` plus `add`
  (containerd pkg/oci/spec_opts.go defaultUnixCaps; pkg/cri WithCapabilities); a non-root user
  keeps none effective, as runc sets no ambient capabilities. The kernel then applies kill(2)'s
  rule itself (man 2 kill: sender's real or effective UID equals the target's real or saved
  UID, or CAP_KILL).
- Status reported late: the kubelet notices container state changes by relisting every second
  (pkg/kubelet/pleg/generic.go, relistPeriod) and writes them through its status manager.
- pods/log of a container that has not started: 400 "is waiting to start"
  (pkg/kubelet/kubelet_pods.go, validateContainerLogStatus).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp.web
import kmock

NAMESPACES = kmock.resource("", "v1", "namespaces")
ENFORCE = "pod-security.kubernetes.io/enforce"
# policy/check_capabilities_baseline.go: the capabilities "baseline" lets a container add
BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                 "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
# containerd's default set for a container (pkg/oci/spec_opts.go)
RUNTIME_DEFAULT_CAPS = {"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW",
                        "SETGID", "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE",
                        "SYS_CHROOT", "KILL", "AUDIT_WRITE"}
STATUS_DELAY = 1.0  # the kubelet's PLEG relist period
# waiting reasons the kubelet keeps, with its messages (pkg/kubelet/images/image_manager.go,
# pkg/kubelet/images/types.go)
IMAGE_ERROR_MESSAGES = {
    "ErrImageNeverPull": 'Container image "{image}" is not present with pull policy of Never',
    "ImageInspectError": 'Failed to inspect image "{image}": rpc error: code = Unknown',
    "InvalidImageName": 'Failed to apply default image tag "{image}": couldn\'t parse image name',
}
WEBSOCKET_CREATE_CHECK = (1, 35)


def status(code: int, reason: str, message: str,
           details: Mapping[str, Any] | None = None) -> aiohttp.web.Response:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Status", "metadata": {},
                            "status": "Failure", "code": code, "reason": reason,
                            "message": message}
    if details is not None:
        body["details"] = dict(details)
    return aiohttp.web.json_response(body, status=code)


def set_level(cluster: Any, namespace: str, level: str) -> None:
    """Label a namespace with the Pod Security level admission enforces (call on the loop)."""
    cluster.objects[NAMESPACES, None, namespace] = {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {ENFORCE: level}}}


def level_of(cluster: Any, namespace: str) -> str:
    key = (NAMESPACES, None, namespace)
    if key not in cluster.objects or cluster.objects[key].deleted:
        return "privileged"  # no label: the cluster default (privileged unless configured)
    labels = cluster.objects[key].raw.get("metadata", {}).get("labels") or {}
    return str(labels.get(ENFORCE, "privileged"))


def _containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = pod.get("spec", {})
    return [*(spec.get("initContainers") or ()), *(spec.get("containers") or ()),
            *(spec.get("ephemeralContainers") or ())]


def violations(level: str, pod: Mapping[str, Any]) -> list[str]:
    """What Pod Security `level` finds wrong with the pod, worded as the admission does."""
    if level == "privileged":
        return []
    spec, found = pod.get("spec", {}), []
    pod_sc = spec.get("securityContext") or {}
    hosts = [f"{k}={'true'}" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    if hosts:  # check_hostNamespaces.go
        found.append(f"host namespaces ({', '.join(hosts)})")
    containers = _containers(pod)
    privileged = [c["name"] for c in containers
                  if (c.get("securityContext") or {}).get("privileged")]
    if privileged:  # check_privileged.go
        found.append("privileged (" + "; ".join(
            f'container "{n}" must not set securityContext.privileged=true'
            for n in privileged) + ")")
    added = {c["name"]: list(((c.get("securityContext") or {}).get("capabilities") or {})
                             .get("add") or ()) for c in containers}
    if level == "baseline":
        bad = {n: [a for a in adds if a not in BASELINE_CAPS] for n, adds in added.items()}
        if any(bad.values()):  # check_capabilities_baseline.go
            found.append("non-default capabilities (" + "; ".join(
                f'container "{n}" must not include {", ".join(map(repr, a))} in '
                "securityContext.capabilities.add" for n, a in bad.items() if a)
                .replace("'", '"') + ")")
        return found
    return found + _restricted(pod_sc, containers, added)


def _restricted(pod_sc: Mapping[str, Any], containers: list[Mapping[str, Any]],
                added: Mapping[str, list[str]]) -> list[str]:
    found = []
    sc = {c["name"]: c.get("securityContext") or {} for c in containers}
    escalation = [n for n, s in sc.items() if s.get("allowPrivilegeEscalation") is not False]
    if escalation:  # check_allowPrivilegeEscalation.go
        found.append("allowPrivilegeEscalation != false (" + "; ".join(
            f'container "{n}" must set securityContext.allowPrivilegeEscalation=false'
            for n in escalation) + ")")
    caps = [f'container "{n}" must set securityContext.capabilities.drop=["ALL"]'
            for n, s in sc.items() if "ALL" not in ((s.get("capabilities") or {}).get("drop")
                                                    or ())]
    caps += [f'container "{n}" must not include "{a}" in securityContext.capabilities.add'
             for n, adds in added.items() for a in adds if a != "NET_BIND_SERVICE"]
    if caps:  # check_capabilities_restricted.go
        found.append("unrestricted capabilities (" + "; ".join(caps) + ")")
    explicit_false = [n for n, s in sc.items() if s.get("runAsNonRoot") is False]
    unset = [n for n, s in sc.items() if s.get("runAsNonRoot") is None]
    if explicit_false or (unset and pod_sc.get("runAsNonRoot") is not True):
        said = [f'container "{n}" must not set securityContext.runAsNonRoot=false'
                for n in explicit_false]
        if unset and pod_sc.get("runAsNonRoot") is not True:
            said.append(f"pod or container {', '.join(map(repr, unset))} must set "
                        "securityContext.runAsNonRoot=true".replace("'", '"'))
        found.append("runAsNonRoot != true (" + "; ".join(said) + ")")  # check_runAsNonRoot.go
    root = [n for n, s in sc.items() if s.get("runAsUser") == 0]
    if root or pod_sc.get("runAsUser") == 0:  # check_runAsUser.go
        found.append("runAsUser=0 (" + ("pod must not set runAsUser=0" if not root else "; ".join(
            f'container "{n}" must not set runAsUser=0' for n in root)) + ")")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    no_seccomp = [n for n, s in sc.items() if (s.get("seccompProfile") or {}).get(
        "type", pod_seccomp) not in ("RuntimeDefault", "Localhost")]
    if no_seccomp:  # check_seccompProfile_restricted.go
        found.append("seccompProfile (pod or containers " + ", ".join(
            f'"{n}"' for n in no_seccomp) + ' must set securityContext.seccompProfile.type to '
            '"RuntimeDefault" or "Localhost")')
    return found


def admit_ephemeral(cluster: Any, namespace: str, name: str,
                    body: Any) -> aiohttp.web.Response | None:
    """The API server's answer to a pods/ephemeralcontainers PATCH when it refuses it; None to
    let the patch through (call on the emulator's loop)."""
    if not cluster.ephemeral:  # the route does not exist: a 404 that names nothing
        return status(404, "NotFound", "the server could not find the requested resource",
                      details={})
    key = (kmock.resource("", "v1", "pods"), namespace, name)
    if key not in cluster.objects or cluster.objects[key].deleted:
        return status(404, "NotFound", f'pods "{name}" not found',
                      details={"name": name, "kind": "pods"})
    pod = cluster.objects[key].raw
    wanted = ((body or {}).get("spec") or {}).get("ephemeralContainers") or []
    candidate = {**pod, "spec": {**pod.get("spec", {}), "ephemeralContainers": wanted}}
    level = level_of(cluster, namespace)
    found = violations(level, candidate)
    if found:
        return status(403, "Forbidden", f'pods "{name}" is forbidden: violates PodSecurity '
                      f'"{level}:latest": {", ".join(found)}',
                      details={"name": name, "kind": "pods"})
    return None


def exec_verbs(version: tuple[int, int]) -> tuple[str, ...]:
    """The verbs pods/exec over a websocket is authorized with, in order."""
    return ("get", "create") if version >= WEBSOCKET_CREATE_CHECK else ("get",)


# --- the kubelet's side
def effective(pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, Any]:
    """The container's securityContext over the pod's (securitycontext.DetermineEffective...)."""
    pod_sc = pod.get("spec", {}).get("securityContext") or {}
    own = container.get("securityContext") or {}
    merged = {k: pod_sc[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot") if k in pod_sc}
    return {**merged, **own}


def run_as_non_root_refusal(pod: Mapping[str, Any], container: Mapping[str, Any],
                            image_user: int) -> str | None:
    """verifyRunAsNonRoot's error for this container, or None when it may start."""
    sc = effective(pod, container)
    where = f'(pod: "{pod["metadata"]["name"]}_{pod["metadata"]["namespace"]}", container: ' \
            f'{container["name"]})'
    if not sc.get("runAsNonRoot"):
        return None
    if sc.get("runAsUser") is not None:
        return None if sc["runAsUser"] != 0 else \
            f"container's runAsUser breaks non-root policy {where}"
    if image_user == 0:
        return f"container has runAsNonRoot and image will run as root {where}"
    return None


def credentials(pod: Mapping[str, Any], container: Mapping[str, Any],
                image_user: int) -> list[str]:
    """A setpriv prefix that gives the process the user and capabilities the runtime would."""
    sc = effective(pod, container)
    uid = int(sc.get("runAsUser", image_user))
    gid = int(sc.get("runAsGroup", uid))
    caps_sc = sc.get("capabilities") or {}
    drop, add = set(caps_sc.get("drop") or ()), set(caps_sc.get("add") or ())
    caps = set() if "ALL" in drop else RUNTIME_DEFAULT_CAPS - drop
    caps |= add
    bounding = ",".join(["-all", *(f"+{c.lower()}" for c in sorted(caps))])
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
            "--inh-caps=-all", f"--bounding-set={bounding}", "--"]


def waiting_log(namespace: str, pod: str, container: str, reason: str) -> aiohttp.web.Response:
    return status(400, "BadRequest", f'container "{container}" in pod "{pod}" is waiting to '
                  f"start: {reason}")
