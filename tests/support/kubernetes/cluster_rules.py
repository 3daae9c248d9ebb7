"""What a real cluster does to workload and node faults that a plain object store does not.

The emulator (emulator.py) calls these from its request path and its controller loop; each rule
cites the upstream code it follows, so a test that passes here fails for the same reason the
adapter would fail on a cluster:

- the Eviction API's refusals: 500 for a pod two PodDisruptionBudgets select, 403 for a budget
  whose status allows a negative number of disruptions, 429 *without* Retry-After when the
  budget allows none (kubernetes pkg/registry/core/pod/storage/eviction.go),
- graceful deletion: a DELETE with gracePeriodSeconds=0 removes the pod object at once while
  its containers may still run (a force delete), recorded in `force_deleted`
  (kubernetes pkg/registry/rest/delete.go, BeforeDelete; kubectl's delete.go turns 0 into 1
  unless --force for exactly this reason),
- a HorizontalPodAutoscaler that puts a scaled target back to what it wants on every sync,
  except a target scaled to 0, which disables it (kubernetes
  pkg/controller/podautoscaler/horizontal.go, reconcileAutoscaler: "scale.Spec.Replicas == 0
  && minReplicas != 0" -> ScalingDisabled),
- field managers: an Update (PATCH/PUT) that changes `spec.unschedulable` of a node makes the
  request's field manager its owner in `metadata.managedFields` (apiserver
  pkg/endpoints/handlers/fieldmanager; the manager is `?fieldManager=`, else the user agent's
  first word: handlers/rest.go, prefixFromUserAgent); `kubectl cordon` sends
  fieldManager=kubectl-cordon (kubectl pkg/cmd/drain/drain.go),
- an API server that answers 429 without Retry-After on reads (a proxy or aggregated API in
  front of it; client-go retries a 429 only with Retry-After: rest/request.go, checkWait),
- NetworkPolicy semantics, as a connectivity oracle (`reachable`): policies are additive (a
  pod selected by several may receive what any allows), a connection needs the source's egress
  and the destination's ingress allowed, and traffic from the node a pod runs on is always
  allowed (kubernetes.io/docs/concepts/services-networking/network-policies: "Network policies
  do not conflict; they are additive", "traffic to and from the node where a Pod is running is
  always allowed"; the API types' docs in staging/src/k8s.io/api/networking/v1/types.go).
  Whether established connections are cut is the network plugin's business: not emulated.
  `NetworkPlugin` enforces the oracle for real on pods whose IPs are loopback addresses: new
  connections from the runner that the policies do not allow are dropped by nftables after a
  programming delay, as Calico and Cilium drop them; `enforces=False` is kindnet or flannel,
  which accept NetworkPolicies and enforce nothing,
- which reads cost an etcd round trip: a LIST without resourceVersion is a consistent read
  that goes through etcd, one with resourceVersion=0 is served from the watch cache
  (apiserver pkg/storage/cacher/delegator.go, shouldDelegateList; before 1.31's
  ConsistentListFromCache every consistent LIST reached etcd): `etcd_reads`.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp.web
import kmock

if TYPE_CHECKING:
    from kmock._internal import rendering

    from tests.support.kubernetes.emulator import Cluster

HPAS = kmock.resource("autoscaling", "v2", "horizontalpodautoscalers")
MANAGED_UNSCHEDULABLE = {"f:spec": {"f:unschedulable": {}}}


@dataclass
class Rules:
    """The emulator's state for these rules (one per Cluster)."""

    hpa_sync: float = 0.3  # the HPA controller syncs every 15 s on a cluster; faster here
    throttle_reads: int = 0  # answer this many more GET/LIST with 429 and no Retry-After
    force_deleted: list[str] = field(default_factory=list)  # ns/name of pods deleted at once
    plugin: NetworkPlugin | None = None  # enforces NetworkPolicies on loopback pod IPs
    _hpa_due: dict[tuple[str, str], float] = field(default_factory=dict)


def status(code: int, reason: str, message: str,
           details: dict[str, Any] | None = None) -> aiohttp.web.Response:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Status", "metadata": {},
                            "status": "Failure", "code": code, "reason": reason,
                            "message": message}
    if details:
        body["details"] = details
    return aiohttp.web.json_response(body, status=code)


# --- the Eviction API (pkg/registry/core/pod/storage/eviction.go)
def _selects(pdb: dict[str, Any], labels: dict[str, str]) -> bool:
    match = (pdb.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    # "If a PDB with a nil or empty selector creeps in, it should match nothing, not everything."
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def eviction_refusal(cluster: Cluster, pod: dict[str, Any],
                     namespace: str) -> aiohttp.web.Response | None:
    """The API server's answer when it refuses to evict `pod`, or None to evict it."""
    from tests.support.kubernetes.emulator import PDBS, pod_ready

    labels = pod.get("metadata", {}).get("labels") or {}
    phase = pod.get("status", {}).get("phase")
    if phase in ("Succeeded", "Failed", "Pending") or pod["metadata"].get("deletionTimestamp"):
        return None  # canIgnorePDB: deleted without looking at budgets
    budgets = [obj.raw for (res, ns, _), obj in list(cluster.objects.items())
               if res == PDBS and ns == namespace and not obj.deleted and _selects(obj.raw,
                                                                                  labels)]
    if len(budgets) > 1:
        return status(500, "InternalError", "This pod has more than one PodDisruptionBudget, "
                      "which the eviction subresource does not support.")
    if not budgets:
        return None
    pdb = budgets[0]
    name = pdb["metadata"]["name"]
    allowed = (pdb.get("status") or {}).get("disruptionsAllowed")
    if allowed is not None and int(allowed) < 0:  # checkAndDecrement
        return status(403, "Forbidden", f'poddisruptionbudget.policy "{name}" is forbidden: '
                      "pdb disruptions allowed is negative",
                      {"name": name, "group": "policy", "kind": "poddisruptionbudget"})
    match = pdb["spec"]["selector"]["matchLabels"]
    healthy = sum(1 for p in cluster._pods(namespace) if pod_ready(p) and all(
        (p.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in match.items()))
    if healthy - (1 if pod_ready(pod) else 0) < int(pdb.get("spec", {}).get("minAvailable", 0)):
        # NewTooManyRequests(..., 0): no Retry-After header
        return status(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's "
                      "disruption budget.",
                      {"causes": [{"reason": "DisruptionBudget", "message":
                                   f"The disruption budget {name} needs more healthy pods"}]})
    return None


# --- graceful deletion (pkg/registry/rest/delete.go)
def note_force_delete(cluster: Cluster, request: rendering.Request) -> None:
    if request.subresource or not request.name or request.resource is None or \
            request.resource.plural != "pods":
        return
    body = request.data if isinstance(request.data, dict) else {}
    grace = body.get("gracePeriodSeconds", request.params.get("gracePeriodSeconds"))
    if grace is not None and int(grace) == 0:
        cluster.rules.force_deleted.append(f"{request.namespace}/{request.name}")


# --- the HPA controller (pkg/controller/podautoscaler/horizontal.go)
def autoscale(cluster: Cluster, now: float) -> None:
    """One sync of every HPA whose period is due: the target gets the replicas the HPA wants
    (status.desiredReplicas, else minReplicas; clamped to min..max), unless scaled to 0."""
    from tests.support.kubernetes.emulator import DEPLOYMENTS, STATEFULSETS

    kinds = {"Deployment": DEPLOYMENTS, "StatefulSet": STATEFULSETS}
    for (res, ns, name), obj in list(cluster.objects.items()):
        if res != HPAS or obj.deleted:
            continue
        due = cluster.rules._hpa_due.setdefault((ns, name), now + cluster.rules.hpa_sync)
        if due > now:
            continue
        cluster.rules._hpa_due[ns, name] = now + cluster.rules.hpa_sync
        spec = obj.raw.get("spec", {})
        ref = spec.get("scaleTargetRef") or {}
        key = (kinds.get(ref.get("kind", "")), ns, ref.get("name"))
        target = cluster._live(key)
        if target is None:
            continue
        current = int(target.get("spec", {}).get("replicas", 1))
        low, high = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
        if current == 0 and low != 0:
            continue  # "ScalingDisabled": scaling is disabled since the replica count is 0
        wanted = int((obj.raw.get("status") or {}).get("desiredReplicas") or low)
        wanted = max(low, min(high, wanted))
        if wanted != current:
            cluster.objects[key].patch({"spec": {"replicas": wanted}})


# --- field managers (apiserver pkg/endpoints/handlers/fieldmanager)
def field_manager(request: rendering.Request) -> str:
    raw = request._raw_request
    if request.params.get("fieldManager"):
        return str(request.params["fieldManager"])
    agent = raw.headers.get("User-Agent", "") if raw is not None else ""
    return agent.split("/")[0] or "unknown"


def track_unschedulable(cluster: Cluster, request: rendering.Request) -> None:
    """Before a node PATCH/PUT is applied: a change of spec.unschedulable moves its ownership
    in managedFields to this request's manager (an unchanged value moves nothing)."""
    from tests.support.kubernetes.emulator import NODES

    if request.resource != NODES or not request.name or not isinstance(request.data, dict):
        return
    spec = request.data.get("spec") or {}
    node = cluster._live((NODES, None, request.name))
    if node is None or "unschedulable" not in spec:
        return
    if bool(spec["unschedulable"]) == bool(node.get("spec", {}).get("unschedulable")):
        return
    manager = field_manager(request)
    kept = [m for m in node["metadata"].get("managedFields") or ()
            if m.get("fieldsV1") != MANAGED_UNSCHEDULABLE and m.get("manager") != manager]
    entry = {"manager": manager, "operation": "Update", "apiVersion": "v1",
             "time": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "fieldsType": "FieldsV1", "fieldsV1": MANAGED_UNSCHEDULABLE}
    # the whole list is replaced: a merge patch of a list would not remove the old owner
    cluster.objects[NODES, None, request.name].patch({"metadata": {"managedFields": None}})
    cluster.objects[NODES, None, request.name].patch(
        {"metadata": {"managedFields": [*kept, entry]}})


# --- NetworkPolicy semantics (networking/v1 types.go, the network-policies concept page)
def _label_selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector (apimachinery pkg/apis/meta/v1/helpers.go, LabelSelectorAsSelector;
    an empty selector selects everything here, as a policy's podSelector does)."""
    selector = selector or {}
    ops = {"In": lambda k, vs: labels.get(k) in vs, "NotIn": lambda k, vs: labels.get(k) not in vs,
           "Exists": lambda k, vs: k in labels, "DoesNotExist": lambda k, vs: k not in labels}
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()) and \
        all(ops[e["operator"]](e["key"], e.get("values") or ())
            for e in selector.get("matchExpressions") or ())


def _peer_matches(peer: dict[str, Any], pod: dict[str, Any], policy_ns: str) -> bool:
    if "ipBlock" in peer:
        return str(peer["ipBlock"].get("cidr")) == "0.0.0.0/0"
    meta = pod["metadata"]
    if "namespaceSelector" in peer:
        ns_labels = {"kubernetes.io/metadata.name": meta["namespace"]}
        if not _label_selects(peer["namespaceSelector"], ns_labels):
            return False
    elif meta["namespace"] != policy_ns:
        return False
    return "podSelector" not in peer or _label_selects(peer["podSelector"],
                                                 meta.get("labels") or {})


def _allowed(cluster: Cluster, pod: dict[str, Any], direction: str, other: dict[str, Any] | None,
             port: int) -> bool:
    from tests.support.kubernetes.emulator import NETPOLS

    ns, labels = pod["metadata"]["namespace"], pod["metadata"].get("labels") or {}
    isolating = [obj.raw for (res, pns, _), obj in list(cluster.objects.items())
                 if res == NETPOLS and pns == ns and not obj.deleted
                 and _label_selects(obj.raw["spec"].get("podSelector"), labels)
                 and direction.capitalize() in (obj.raw["spec"].get("policyTypes") or
                                                ["Ingress"])]
    if not isolating:
        return True
    peers_key = "from" if direction == "ingress" else "to"
    for policy in isolating:
        for rule in policy["spec"].get(direction) or ():
            ports = rule.get("ports") or [{}]
            if not any(p.get("port") in (None, port) for p in ports):
                continue
            peers = rule.get(peers_key) or [{}]
            if any(not p or (other is not None and _peer_matches(p, other, ns))
                   for p in peers):
                return True
    return False


def reachable(cluster: Cluster, source: dict[str, Any] | str, dest: dict[str, Any],
              port: int) -> bool:
    """Would a new connection from `source` (a pod, or "node" for the destination's own node)
    to `dest`:port be let through by the NetworkPolicies in force?"""
    if source == "node":
        return True  # the kubelet's probes: always allowed
    assert isinstance(source, dict)
    return _allowed(cluster, source, "egress", dest, port) and _allowed(
        cluster, dest, "ingress", source, port)


RUNNER = {"metadata": {"namespace": "chaos-runner", "name": "runner", "labels": {}}}


@dataclass
class NetworkPlugin:
    """NetworkPolicies enforced on pods whose status.podIP is a loopback address and whose
    annotation `emulator/ports` lists the ports they listen on, as nftables drops in this
    host's output path (the runner is a pod of its own namespace, outside every policy)."""

    table: str
    enforces: bool = True
    delay: float = 0.5  # a plugin programs a new policy after a moment
    _applied: frozenset[tuple[str, int]] = frozenset()
    _seen: tuple[frozenset[tuple[str, int]], float] | None = None

    def sync(self, cluster: Cluster, now: float) -> None:
        wanted = frozenset(self._blocked(cluster)) if self.enforces else frozenset()
        if wanted == self._applied:
            self._seen = None
            return
        if self._seen is None or self._seen[0] != wanted:
            self._seen = (wanted, now)
        if now - self._seen[1] >= self.delay:
            self._apply(wanted)

    def _blocked(self, cluster: Cluster) -> Iterator[tuple[str, int]]:
        for pod in list(cluster._pods()):
            ip = pod.get("status", {}).get("podIP")
            ports = (pod["metadata"].get("annotations") or {}).get("emulator/ports", "")
            for port in filter(None, ports.split(",")):
                if ip and not reachable(cluster, RUNNER, pod, int(port)):
                    yield ip, int(port)

    def _apply(self, blocked: frozenset[tuple[str, int]]) -> None:
        rules = "".join(f"    ip daddr {ip} tcp dport {port} drop\n" for ip, port in blocked)
        script = (f"table inet {self.table}\ndelete table inet {self.table}\n"
                  f"table inet {self.table} {{\n  chain output {{\n"
                  f"    type filter hook output priority 0; policy accept;\n{rules}  }}\n}}\n")
        subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True, timeout=10)
        self._applied = blocked

    def remove(self) -> None:
        subprocess.run(["nft", "delete", "table", "inet", self.table], capture_output=True,
                       check=False, timeout=10)


@contextlib.contextmanager
def listening(ip: str) -> Iterator[int]:
    """A pod's server on a free port of `ip`: accepts and closes every connection."""
    server = socket.create_server((ip, 0))
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = server.accept()
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        server.close()


def connects(ip: str, port: int, timeout: float = 1.0) -> bool:
    """An independent client's view: does a new connection get through now?"""
    start = time.monotonic()
    try:
        socket.create_connection((ip, port), timeout=timeout).close()
    except OSError:
        return False
    return time.monotonic() - start < timeout


# --- reads through etcd or from the watch cache (apiserver pkg/storage/cacher)
def etcd_reads(cluster: Cluster) -> list[Any]:
    """The LIST calls a real API server would answer with a consistent read from etcd."""
    return [c for c in cluster.calls if c.verb == "list" and
            dict(c.query).get("resourceVersion") in (None, "")]


# --- throttling without Retry-After
def throttled(cluster: Cluster, verb: str) -> aiohttp.web.Response | None:
    if cluster.rules.throttle_reads > 0 and verb in ("get", "list"):
        cluster.rules.throttle_reads -= 1
        return status(429, "TooManyRequests", "Too many requests, please try again later.")
    return None
