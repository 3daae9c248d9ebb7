"""A Kubernetes API emulator for the adapter's tests: kmock plus the controllers a test needs.

kmock's KubernetesEmulator stores objects and serves them over real HTTP; this adds what the
chaos adapter meets in a cluster:

- label and field selectors on list calls (kmock returns every object),
- a uid, resourceVersion and creationTimestamp on every object it stores,
- ReplicaSet-like controllers: a Deployment or StatefulSet owns `replicas` pods; a deleted or
  evicted pod is recreated after `recreate_delay` and becomes Ready after `ready_delay`;
  scaling changes the pod count; `status.availableReplicas` follows the ready pods,
- the scale subresource (GET/PATCH .../scale answers a Scale object),
- the Eviction API with PodDisruptionBudgets (429 when an eviction would break minAvailable),
- what a real cluster does to workload and node faults (cluster_rules.py, with the upstream
  sources): eviction refusals, force deletes, an HPA controller, field managers, throttling,
  NetworkPolicy semantics and a network plugin that enforces them (or not),
- RBAC and authentication refusals on demand (`deny`, `unauthorized`),
- pods/exec: the API's checks (pod, container, command), then handed to `exec_server`, the
  test kubelet, which speaks the channel websocket and runs the command in the container,
- a cluster without ephemeral containers on demand (`ephemeral=False`: that subresource 404s),
- on pods/ephemeralcontainers, pods/exec and pods/log what a real cluster does (Pod Security
  admission per namespace label, 404s that name the pod or not, exec authorized by `version`),
  in ephemeral_realism.py with the upstream source of each,
- a log of every (verb, group, resource, namespace) call, for the RBAC test.

It runs on its own event loop in a thread, so the blocking client in the test, the runner
subprocess and its watchdog all reach it on 127.0.0.1. Tests touch its state only through
`Emulator.call`, which runs a function on that loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import json
import re
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import attrs
import kmock
from kmock._internal import rendering

from tests.support.kubernetes import cluster_rules, ephemeral_realism

T = TypeVar("T")
PODS = kmock.resource("", "v1", "pods")
NODES = kmock.resource("", "v1", "nodes")
DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
STATEFULSETS = kmock.resource("apps", "v1", "statefulsets")
PDBS = kmock.resource("policy", "v1", "poddisruptionbudgets")
NETPOLS = kmock.resource("networking.k8s.io", "v1", "networkpolicies")
JOBS = kmock.resource("batch", "v1", "jobs")
SECRETS = kmock.resource("", "v1", "secrets")
WORKLOADS = (DEPLOYMENTS, STATEFULSETS)
# The kubelet's side of pods/exec (tests/support/kubernetes/inpod_kubelet.py): given the request to
# upgrade, the namespace, pod, container and argv, it streams the command's run.
ExecServer = Callable[[aiohttp.web.BaseRequest, str, str, str, list[str]],
                      Awaitable[aiohttp.web.StreamResponse]]
# The kubelet's side of pods/log: namespace, pod, container -> the response
LogServer = Callable[[str, str, str], aiohttp.web.StreamResponse]
VERBS = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}


@dataclass(frozen=True)
class Call:
    verb: str
    group: str
    resource: str  # plural, with /subresource
    namespace: str | None
    name: str | None
    body: Any
    query: tuple[tuple[str, str], ...] = ()  # every query parameter, repeated ones repeated


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _verb(method: str, name: str | None, params: Mapping[str, str]) -> str:
    if method == "GET":
        if params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if name else "list"
    if method == "DELETE" and not name:
        return "deletecollection"
    return VERBS.get(method, method.lower())


def labels_match(selector: str, labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector syntax: a=b, a==b, a!=b, a in (x,y), a notin (x), a, !a."""
    for term in re.findall(r"[^,(]+(?:\([^)]*\))?", selector):
        term = term.strip().strip(",").strip()
        if not term:
            continue
        if m := re.fullmatch(r"(\S+)\s+(in|notin)\s+\(([^)]*)\)", term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if (labels.get(key) in values) != (op == "in"):
                return False
        elif m := re.fullmatch(r"(\S+?)\s*(==|!=|=)\s*(\S*)", term):
            key, op, value = m.groups()
            if (labels.get(key) == value) != (op != "!="):
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _field(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def fields_match(selector: str, obj: Mapping[str, Any]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        match = re.fullmatch(r"(.+?)(==|!=|=)(.*)", term)
        if match is None:
            raise ValueError(f"bad field selector term {term!r}")
        key, op, value = match.groups()
        if (_field(obj, key) == value) != (op != "!="):
            return False
    return True


def pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response({"apiVersion": "v1", "kind": "Status", "metadata": {},
                                      "status": "Failure" if code >= 400 else "Success",
                                      "code": code, "reason": reason, "message": message},
                                     status=code)


@attrs.define(kw_only=True)
class Cluster(kmock.KubernetesEmulator):
    calls: list[Call] = attrs.field(factory=list)
    deny: set[tuple[str, str, str]] = attrs.field(factory=set)  # (verb, group, resource)
    unauthorized: bool = False
    recreate_delay: float = 0.3
    ready_delay: float = 0.3
    user: str = "system:serviceaccount:chaos:chaos"
    ephemeral: bool = True  # False: a cluster that does not serve pods/ephemeralcontainers
    exec_server: ExecServer | None = None  # set by the kubelet that runs pods' containers
    version: tuple[int, int] = (1, 35)  # the server's minor version, where behaviour differs
    log_server: LogServer | None = None  # set by the kubelet: pods/log of its containers
    _due: dict[tuple[Any, ...], list[float]] = attrs.field(factory=dict)  # pod recreation times
    rules: cluster_rules.Rules = attrs.field(factory=cluster_rules.Rules)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for resource in (PODS, NODES, *WORKLOADS, PDBS, NETPOLS, JOBS,  # listable while empty
                         cluster_rules.HPAS):
            self.resources[resource] = {}

    # --- the request path
    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        res = request.resource
        if res is None or res.plural is None:
            return await super()._handle(request)
        method = str(request.method.value if hasattr(request.method, "value")
                     else request.method).upper()
        plural = res.plural + (f"/{request.subresource}" if request.subresource else "")
        verbs = ephemeral_realism.exec_verbs(self.version) if request.subresource == "exec" \
            else (_verb(method, request.name, request.params),)
        query = tuple(request._raw_request.query.items()) if request._raw_request else ()
        for verb in verbs:
            self.calls.append(Call(verb, res.group or "", plural, request.namespace,
                                   request.name, request.data, query))
        if self.unauthorized:
            return _status(401, "Unauthorized", "Unauthorized")
        for verb in verbs:
            if (verb, res.group or "", plural) in self.deny:
                where = f' in the namespace "{request.namespace}"' if request.namespace else \
                    " at the cluster scope"
                return _status(403, "Forbidden",
                               f'{plural.split("/")[0]} "{request.name or ""}" is forbidden: '
                               f'User "{self.user}" cannot {verb} resource "{plural}" in API '
                               f'group "{res.group or ""}"{where}')
        if (refused := cluster_rules.throttled(self, verbs[-1])) is not None:
            return refused
        if request.subresource == "ephemeralcontainers":
            async with self._lock:
                refused = ephemeral_realism.admit_ephemeral(self, request.namespace or "",
                                                            request.name or "", request.data)
            if refused is not None:
                return refused
        if request.subresource == "log" and self.log_server is not None:
            return self.log_server(request.namespace or "", request.name or "",
                                   request.params.get("container") or "")
        verb = verbs[-1]
        if request.subresource == "exec":
            return await self._exec(request)
        if request.subresource == "eviction" and method == "POST":
            return await self._evict(request)
        if request.subresource == "scale":
            return await self._scale(request, method)
        if verb == "create" and isinstance(request.data, dict):
            self._stamp(request.data)
        if verb in ("patch", "update"):
            async with self._lock:
                cluster_rules.track_unschedulable(self, request)
        if verb == "delete":
            cluster_rules.note_force_delete(self, request)
        response = await super()._handle(request)
        if verb in ("patch", "update", "delete") and res in WORKLOADS:
            await self.reconcile()
        return response

    async def _serve_list(self, request: rendering.Request) -> Any:
        payload = await super()._serve_list(request)
        labels, fields = request.params.get("labelSelector"), request.params.get("fieldSelector")
        payload["items"] = [
            item for item in payload["items"]
            if (not labels or labels_match(labels, item.get("metadata", {}).get("labels") or {}))
            and (not fields or fields_match(fields, item))]
        return payload

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta["resourceVersion"] = str(len(self.calls))
        return obj

    async def _evict(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        key = (PODS, request.namespace, request.name)
        async with self._lock:
            pod = self._live(key)
            if pod is None:
                return _status(404, "NotFound", f'pods "{request.name}" not found')
            refused = cluster_rules.eviction_refusal(self, pod, request.namespace)
            if refused is not None:
                return refused
            self.objects[key].delete()
        return _status(201, "Created", "evicted")

    async def _exec(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """pods/exec as the API server checks it; the kubelet's exec_server runs and streams it."""
        raw = request._raw_request
        assert raw is not None and request.namespace and request.name
        command = raw.query.getall("command", [])
        async with self._lock:
            pod = self._live((PODS, request.namespace, request.name))
        if pod is None:
            return _status(404, "NotFound", f'pods "{request.name}" not found')
        names = [c["name"] for c in pod.get("spec", {}).get("containers") or ()]
        container = request.params.get("container") or (names[0] if len(names) == 1 else "")
        if container not in names:
            return _status(400, "BadRequest", f"container {container} is not valid for pod "
                           f"{request.name}" if container else "a container name must be "
                           f"specified for pod {request.name}, choose one of: {names}")
        if not command:
            return _status(400, "BadRequest", "you must specify at least 1 command")
        if self.exec_server is None:
            return _status(500, "InternalError", "no kubelet runs this pod's containers")
        return await self.exec_server(raw, request.namespace, request.name, container, command)

    async def _scale(self, request: rendering.Request, method: str) -> aiohttp.web.StreamResponse:
        assert request.resource is not None
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            obj = self._live(key)
            if obj is None:
                return _status(404, "NotFound", f'{request.resource.plural} "{request.name}" '
                               "not found")
            if method == "PATCH":
                replicas = (request.data or {}).get("spec", {}).get("replicas")
                self.objects[key].patch({"spec": {"replicas": replicas}})
                obj = self.objects[key].raw
        if method == "PATCH":
            await self.reconcile()
        return aiohttp.web.json_response({
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": request.name, "namespace": request.namespace,
                         "uid": obj["metadata"].get("uid")},
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
            "status": {"replicas": obj.get("status", {}).get("replicas", 0)}})

    # --- object helpers (call on the emulator's loop)
    def _live(self, key: tuple[Any, Any, Any]) -> dict[str, Any] | None:
        if key not in self.objects or self.objects[key].deleted:
            return None
        return self.objects[key].raw  # type: ignore[no-any-return]

    def _pods(self, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        for (res, ns, _), obj in list(self.objects.items()):
            if res == PODS and not obj.deleted and (namespace is None or ns == namespace):
                yield obj.raw

    def put(self, resource: kmock.resource, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        self.objects[resource, meta.get("namespace"), meta["name"]] = self._stamp(obj)
        return obj

    def pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return [json.loads(json.dumps(p)) for p in self._pods(namespace)]

    def get(self, resource: kmock.resource, namespace: str | None,
            name: str) -> dict[str, Any] | None:
        obj = self._live((resource, namespace, name))
        return None if obj is None else json.loads(json.dumps(obj))

    # --- controllers
    async def reconcile(self) -> None:
        """One pass of the workload controllers: pod counts, readiness, workload status."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        async with self._lock:
            # readiness first, so a workload's status already counts pods that became ready
            for pod in list(self._pods()):
                due = pod.get("metadata", {}).get("annotations", {}).get("emulator/ready-at")
                if due is not None and float(due) <= now and not pod_ready(pod):
                    key = (PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
                    self.objects[key].patch({"status": {
                        "phase": "Running",
                        "conditions": [{"type": "Ready", "status": "True"}]}})
            cluster_rules.autoscale(self, now)
            if self.rules.plugin is not None:
                self.rules.plugin.sync(self, now)
            for (res, ns, name), obj in list(self.objects.items()):
                if res not in WORKLOADS or obj.deleted:
                    continue
                self._reconcile_workload(res, ns, name, obj.raw, now)

    def _reconcile_workload(self, res: kmock.resource, ns: str, name: str,
                            workload: dict[str, Any], now: float) -> None:
        match = workload.get("spec", {}).get("selector", {}).get("matchLabels") or {}
        want = int(workload.get("spec", {}).get("replicas", 1))
        mine = [p for p in self._pods(ns) if all(
            (p["metadata"].get("labels") or {}).get(k) == v for k, v in match.items())]
        pending = self._due.setdefault((res, ns, name), [])
        missing = want - len(mine)
        while len(pending) < missing:
            pending.append(now + self.recreate_delay)
        del pending[max(missing, 0):]
        for _ in [t for t in pending if t <= now]:
            pending.remove(min(pending))
            self._spawn(res, ns, name, workload, now)
        for pod in mine[want:] if missing < 0 else ():
            self.objects[PODS, ns, pod["metadata"]["name"]].delete()
        ready = sum(1 for p in self._pods(ns) if pod_ready(p) and all(
            (p["metadata"].get("labels") or {}).get(k) == v for k, v in match.items()))
        status = {"replicas": len(mine), "readyReplicas": ready, "availableReplicas": ready}
        if {k: workload.get("status", {}).get(k) for k in status} != status:
            self.objects[res, ns, name].patch({"status": status})

    def _spawn(self, res: kmock.resource, ns: str, name: str, workload: dict[str, Any],
               now: float) -> None:
        labels = dict(workload.get("spec", {}).get("template", {}).get("metadata", {})
                      .get("labels") or {})
        pod_name = f"{name}-{uuid.uuid4().hex[:5]}"
        template = dict(workload.get("spec", {}).get("template", {}).get("spec") or {})
        self.put(PODS, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": ns, "labels": labels,
                         "annotations": {"emulator/ready-at": str(now + self.ready_delay)},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet"
                                              if res == DEPLOYMENTS else "StatefulSet",
                                              "name": name, "uid": str(uuid.uuid4()),
                                              "controller": True}]},
            "spec": {**template, "nodeName": template.get("nodeName", "node-1"),
                     "containers": template.get("containers") or [{"name": "app",
                                                                   "image": "app:1"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "Ready",
                                                           "status": "False"}]}})

    async def controllers(self, every: float = 0.05) -> None:
        while True:
            await self.reconcile()
            await asyncio.sleep(every)


@dataclass
class Emulator:
    """The emulator on its own loop and thread; `url`, `kubeconfig` and `call` for tests."""

    cluster: Cluster = field(default_factory=Cluster)
    url: str = ""
    kubeconfig: Path | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None

    def start(self, timeout: float = 10) -> Emulator:
        ready = threading.Event()

        async def serve() -> None:
            self._stop = asyncio.Event()
            async with self.cluster, kmock.Server(self.cluster) as server:
                self.url = str(server.url).rstrip("/")
                task = asyncio.create_task(self.cluster.controllers())
                ready.set()
                await self._stop.wait()
                task.cancel()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(serve())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="k8s-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("the Kubernetes emulator did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def call(self, fn: Callable[[Cluster], T], timeout: float = 10) -> T:
        """Run fn(cluster) on the emulator's loop (its state is not thread-safe)."""
        assert self._loop is not None

        async def run() -> T:
            return fn(self.cluster)

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result(timeout)

    def write_kubeconfig(self, path: Path, context: str = "emulator",
                         namespace: str = "default") -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
            "contexts": [{"name": context, "context": {"cluster": "emulator", "user": "tester",
                                                       "namespace": namespace}}],
        }))
        self.kubeconfig = path
        return path
