"""Which pods, workloads and nodes a fault hits, and the namespace guards.

Selection is one list call with the label and field selectors done by the API server; names
are filtered here. `count`/`percent` pick a reproducible random subset from the run's seed (the
journal records it), in name order, so the same seed picks the same pods from the same set.
Every target carries its UID: a revert on an object whose UID differs is a revert on a
stranger, and counts as gone.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, ParamSpec, TypeVar

from chaos.adapters.base import Adapter, RevertSpec, Scope, TargetRef
from chaos.adapters.kubernetes.api import Api, Gone, Unreachable, api_for
from chaos.adapters.kubernetes.connection import LABEL_RUN, ClusterUnreachable, Connection
from chaos.adapters.local.process import choose
from chaos.errors import GuardRefused, TargetNotFound, UsageError
from chaos.model.experiment import FaultSpec

PROTECTED_NAMESPACE = "kube-system"
WORKLOAD_RESOURCES = {"deployment": "deployments", "statefulset": "statefulsets"}
WORKLOAD_METHODS = {"deployments": "namespaced_deployment",
                    "statefulsets": "namespaced_stateful_set"}
P = ParamSpec("P")
R = TypeVar("R")


def before_anything(resolve: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Targets are resolved before anything is touched: an API server that does not answer
    then is a wrong kubeconfig or a cluster that is down (exit 2, like a target that is not
    there), not an aborted run. Later (inject, revert, probes) it stays an ApiFailed."""

    @functools.wraps(resolve)
    async def resolving(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await resolve(*args, **kwargs)
        except Unreachable as exc:
            raise ClusterUnreachable(str(exc), hint=exc.hint) from exc

    return resolving


def check_namespace(namespace: str, settings: Mapping[str, Any], what: str,
                    hint: str = "") -> None:
    """Refuse kube-system unless allowed, and any namespace outside the allowlist."""
    where = f"{what}: " if what else ""
    if namespace == PROTECTED_NAMESPACE and not settings.get("allow_kube_system"):
        raise GuardRefused(f"{where}refusing to touch namespace kube-system (the cluster's own "
                           "components live there)",
                           hint=hint or "if you mean it, set `kubernetes: {allow_kube_system: "
                                        "true}` in the experiment (chaos inject: "
                                        "--allow-kube-system)")
    allowed = settings.get("namespaces")
    if allowed and namespace not in allowed:
        raise GuardRefused(f"{where}namespace {namespace} is not in kubernetes.namespaces "
                           f"({', '.join(allowed)})",
                           hint="add it to `kubernetes: {namespaces: [...]}` or pick a target "
                                "in an allowed namespace")


def refuse_by_rules(fault: FaultSpec, check: Callable[..., Sequence[tuple[str, str]]],
                    hint: str = "") -> None:
    """A fault type's own rules (FaultType.check, which `chaos validate` reports at their
    lines), kept here too for a FaultSpec that did not come through the loader."""
    problems = check(fault.target, fault.params)
    if problems:
        raise UsageError(f"{fault.name}: " + "; ".join(f"{field}: {message}"
                                                       for field, message in problems), hint=hint)


def refuse_traffic_fields(fault: FaultSpec) -> None:
    """device/host/port/... select traffic for in-pod network faults; elsewhere they would be
    silently ignored, so they are refused."""
    from chaos.faults.targets import no_pod_traffic

    refuse_by_rules(fault, no_pod_traffic)


def namespace_allowed(namespace: str, settings: Mapping[str, Any]) -> bool:
    try:
        check_namespace(namespace, settings, "")
    except GuardRefused:
        return False
    return True


LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def label_selector(labels: Mapping[str, str] | None) -> str | None:
    """`a=1,b=2`; keys and values are checked first: a comma or `!=` in a value would change
    what the API server selects, and a malformed one is its 400, not a usage error."""
    if not labels:
        return None
    for key, value in labels.items():
        prefix, slash, name = str(key).rpartition("/")
        if not LABEL_NAME.fullmatch(name) or (slash and not LABEL_PREFIX.fullmatch(prefix)):
            raise UsageError(f"labels: {key!r} is not a Kubernetes label key (an optional "
                             "DNS prefix and '/', then up to 63 letters, digits, '-', '_' or "
                             "'.', starting and ending with a letter or digit)")
        if value and not LABEL_NAME.fullmatch(str(value)):
            raise UsageError(f"labels: {key}: {value!r} is not a Kubernetes label value (up "
                             "to 63 letters, digits, '-', '_' or '.', starting and ending with "
                             "a letter or digit; one value per key: selectors like `in (...)`"
                             " or `!=` are not supported)")
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def owner_of(meta: Mapping[str, Any]) -> str | None:
    owners = meta.get("ownerReferences") or []
    return f"{owners[0].get('kind')}/{owners[0].get('name')}" if owners else None


def _live(pod: Mapping[str, Any]) -> bool:
    return not pod.get("metadata", {}).get("deletionTimestamp") and pod.get(
        "status", {}).get("phase") not in ("Succeeded", "Failed")


def pod_ref(pod: Mapping[str, Any]) -> TargetRef:
    meta, spec = pod["metadata"], pod.get("spec", {})
    identity = {"namespace": meta["namespace"], "name": meta["name"], "uid": meta.get("uid"),
                "node": spec.get("nodeName"), "owner": owner_of(meta),
                "containers": [c.get("name") for c in spec.get("containers") or ()]}
    return TargetRef(kind="pods", label=f"pod {meta['namespace']}/{meta['name']}",
                     identity=identity, lock_key=f"k8s:pod:{meta.get('uid')}")


async def namespace_for(api: Api, selector: Mapping[str, Any],
                        settings: Mapping[str, Any]) -> str:
    import asyncio

    return str(selector.get("namespace") or await asyncio.to_thread(
        api.conn.default_namespace))


async def list_pods(api: Api, namespace: str, selector: Mapping[str, Any],
                    cached: bool = False) -> list[dict[str, Any]]:
    """Live pods matching every given field of a `pods` selector, sorted by name. `cached`
    (probes) reads with resourceVersion=0: the API server answers from its watch cache instead
    of a consistent read through etcd, which a sample every few hundred ms does not need."""
    names = list(selector.get("names") or ())
    fields = [f for f in (selector.get("fields"),
                          f"spec.nodeName={selector['node']}" if selector.get("node") else None,
                          f"metadata.name={names[0]}" if len(names) == 1 else None)
              if f]
    kwargs = {k: v for k, v in (("label_selector", label_selector(selector.get("labels"))),
                                ("field_selector", ",".join(fields) or None),
                                ("resource_version", "0" if cached else None)) if v}
    answer = await api.call("list", "", "pods", namespace, "CoreV1Api.list_namespaced_pod",
                            namespace, **kwargs)
    pods = [p for p in answer.get("items") or () if _live(p)]
    if names:
        pods = [p for p in pods if p["metadata"]["name"] in names]
    return sorted(pods, key=lambda p: str(p["metadata"]["name"]))


def _readable(value: Any) -> str:
    """A selector value as people write it: app=web,tier=db for labels, a,b for lists."""
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def selector_text(selector: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_readable(v)}" for k, v in selector.items()
                     if v not in (None, (), [], {}) and k != "namespace")


def describe(selector: Mapping[str, Any], namespace: str) -> str:
    parts = selector_text(selector)
    return f"pods in {namespace}" + (f" ({parts})" if parts else "")


@before_anything
async def matching_pods(api: Api, fault: FaultSpec) -> tuple[str, list[dict[str, Any]]]:
    """(namespace, every live pod the selector matches), after the namespace guards."""
    selector = fault.target.selector
    namespace = await namespace_for(api, selector, fault.kubernetes)
    check_namespace(namespace, fault.kubernetes, fault.name)
    pods = await list_pods(api, namespace, selector)
    if not pods:
        raise TargetNotFound(f"{fault.name}: no running pod matches "
                             f"{describe(selector, namespace)}")
    return namespace, pods


async def resolve_pods(api: Api, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
    """The pods a fault hits now: selector, guards, then count/percent by the run's seed."""
    _, pods = await matching_pods(api, fault)
    chosen = choose(pods, fault.target.count, fault.target.percent, scope.seed + fault.index)
    return [pod_ref(p) for p in sorted(chosen, key=lambda p: str(p["metadata"]["name"]))]


async def same_pod(api: Api, identity: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pod with this identity, or None when it is gone or its UID differs (a new pod)."""
    try:
        pod = await api.call("get", "", "pods", identity["namespace"],
                             "CoreV1Api.read_namespaced_pod", identity["name"],
                             identity["namespace"])
    except Gone:
        return None
    return pod if pod.get("metadata", {}).get("uid") == identity.get("uid") else None


async def _named_or_labelled(selector: Mapping[str, Any], read: Callable[[], Awaitable[Any]],
                             listing: Callable[[], Awaitable[Any]]) -> list[dict[str, Any]]:
    """A `name` is one GET (its labels must match too); labels alone are one LIST."""
    if not selector.get("name"):
        answer = await listing()
        return sorted(answer.get("items") or (), key=lambda o: str(o["metadata"]["name"]))
    try:
        found: dict[str, Any] = await read()
    except Gone:
        return []
    labels = found["metadata"].get("labels") or {}
    wanted = selector.get("labels") or {}
    return [found] if all(labels.get(k) == v for k, v in wanted.items()) else []


@before_anything
async def resolve_workloads(api: Api, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
    selector = fault.target.selector
    resource = WORKLOAD_RESOURCES[fault.target.kind]
    method = WORKLOAD_METHODS[resource]
    namespace = await namespace_for(api, selector, fault.kubernetes)
    check_namespace(namespace, fault.kubernetes, fault.name)
    found = await _named_or_labelled(
        selector,
        lambda: api.call("get", "apps", resource, namespace, f"AppsV1Api.read_{method}",
                         selector["name"], namespace),
        lambda: api.call("list", "apps", resource, namespace, f"AppsV1Api.list_{method}",
                         namespace, label_selector=label_selector(selector.get("labels"))))
    if not found:
        raise TargetNotFound(f"{fault.name}: no {fault.target.kind} in {namespace} matches "
                             f"{selector_text(selector)}")
    chosen = choose(found, fault.target.count, fault.target.percent, scope.seed + fault.index)
    refs = []
    for w in sorted(chosen, key=lambda w: str(w["metadata"]["name"])):
        meta = w["metadata"]
        identity = {"resource": resource, "namespace": namespace, "name": meta["name"],
                    "uid": meta.get("uid"), "replicas": int(w.get("spec", {}).get("replicas", 1)),
                    "marked_by": (meta.get("labels") or {}).get(LABEL_RUN)}
        refs.append(TargetRef(kind=fault.target.kind,
                              label=f"{fault.target.kind} {namespace}/{meta['name']}",
                              identity=identity, lock_key=f"k8s:{resource}:{meta.get('uid')}"))
    return refs


@before_anything
async def resolve_nodes(api: Api, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
    selector = fault.target.selector
    found = await _named_or_labelled(
        selector,
        lambda: api.call("get", "", "nodes", None, "CoreV1Api.read_node", selector["name"]),
        lambda: api.call("list", "", "nodes", None, "CoreV1Api.list_node",
                         label_selector=label_selector(selector.get("labels"))))
    if not found:
        raise TargetNotFound(f"{fault.name}: no node matches {selector_text(selector)}")
    chosen = choose(found, fault.target.count, fault.target.percent, scope.seed + fault.index)
    return [node_ref(n) for n in sorted(chosen, key=lambda n: str(n["metadata"]["name"]))]


def node_ref(node: Mapping[str, Any]) -> TargetRef:
    meta = node["metadata"]
    identity = {"name": meta["name"], "uid": meta.get("uid"),
                "unschedulable": bool(node.get("spec", {}).get("unschedulable"))}
    return TargetRef(kind="node", label=f"node {meta['name']}", identity=identity,
                     lock_key=f"k8s:node:{meta.get('uid')}")


async def same_node(api: Api, identity: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        node = await api.call("get", "", "nodes", None, "CoreV1Api.read_node", identity["name"])
    except Gone:
        return None
    return node if node.get("metadata", {}).get("uid") == identity.get("uid") else None


def check_labels(fault: FaultSpec) -> None:
    """The target's labels, checked before any call; the error names the fault and field."""
    try:
        label_selector(fault.target.selector.get("labels"))
    except UsageError as exc:
        raise UsageError(f"{fault.name}: target.{fault.target.kind}.{exc}") from exc


def api_of(fault: FaultSpec) -> Api:
    return api_for(fault.kubernetes)


def api_of_spec(spec: Mapping[str, Any]) -> Api:
    """The Api a revert spec names (the watchdog and `chaos recover` have nothing else)."""
    return api_for(Connection.from_spec(spec["connection"]))


@dataclass(frozen=True)
class ClusterSpec(RevertSpec):
    """The head every cluster adapter's revert spec starts with: what the revert does, and the
    cluster to do it in (the connection's own plain data, read by `api_of_spec`)."""

    action: str = "none"
    connection: Mapping[str, Any] = field(default_factory=dict)

    def head(self) -> dict[str, Any]:
        return {**self.header(), "action": self.action, "connection": dict(self.connection)}

    @staticmethod
    def head_of(data: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """(adapter, action, connection) of a spec as JSON."""
        return (str(data["adapter"]), str(data.get("action", "none")),
                dict(data.get("connection") or {}))


class ClusterAdapter(Adapter):
    """What the Kubernetes adapters share: targets from the selector of their kind, the head of
    the revert spec (adapter, action, the connection to revert through)."""

    abstract = True
    uses_traffic_fields: ClassVar[bool] = False  # device/port/...: in-pod network faults only

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.abstract = bool(cls.__dict__.get("abstract", False))  # concrete unless it says

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        if self.target_kind == "pods" and not self.uses_traffic_fields:
            refuse_traffic_fields(fault)
        check_labels(fault)
        resolver = {"pods": resolve_pods, "node": resolve_nodes}.get(self.target_kind,
                                                                     resolve_workloads)
        return await resolver(api_of(fault), fault, scope)

    def connection_of(self, fault: FaultSpec) -> dict[str, Any]:
        return dict(api_of(fault).conn.as_spec())
