"""How to reach a cluster, as data that another process can use again.

A `Connection` names a kubeconfig file and context, or the pod's service account. It is written
into every revert spec, so the watchdog and `chaos recover` (separate processes, maybe after a
reboot) reconnect to the same cluster. It holds paths and names only: never a token, a client
certificate or a password, which stay in the kubeconfig or the service account mount.

The `kubernetes` package is imported here, lazily, when a client is first built.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.errors import ChaosError, PermissionDenied

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
LABEL_RUN = "chaos.dev/run"  # on everything we create or change: which run did it
ANNOTATION_EXPIRES = "chaos.dev/expires"  # RFC 3339 UTC; `chaos recover --kubernetes` acts after
ANNOTATION_FAULT = "chaos.dev/fault"  # what was done, for people reading `kubectl describe`
EXPIRY_GRACE = 60.0  # seconds past the fault's end before a mark counts as expired

log = logging.getLogger(__name__)


class ClusterUnreachable(ChaosError):
    hint = ("check the kubeconfig and context (`kubectl --context CONTEXT get pods`), or the "
            "`kubernetes:` section of the experiment")


@dataclass(frozen=True)
class Connection:
    kubeconfig: str | None = None  # absolute path(s), os.pathsep-joined; None with in_cluster
    context: str | None = None  # None: the kubeconfig's current context
    in_cluster: bool = False

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> Connection:
        """The experiment's `kubernetes:` section -> a connection; files before in-cluster.

        Like kubectl: every existing file $KUBECONFIG names is merged (the client merges
        `a:b`), empty ones are skipped, the current context is the first one a file sets, and
        ~/.kube/config is read only when $KUBECONFIG is unset: a $KUBECONFIG naming no file
        must not send faults to the cluster of ~/.kube/config."""
        settings = settings or {}
        context = settings.get("context")
        given = settings.get("kubeconfig")
        env = os.environ.get("KUBECONFIG", "")
        named = [given] if given else [p for p in env.split(os.pathsep) if p] or [
            "~/.kube/config"]
        paths = [Path(os.path.expanduser(p)).resolve() for p in named]
        if given and not paths[0].exists():
            raise ClusterUnreachable(f"kubeconfig {paths[0]} does not exist",
                                     hint="fix `kubernetes: {kubeconfig: ...}` (a relative path "
                                          "is read from the experiment file's directory; chaos "
                                          "inject: --kubeconfig, from the current one), or "
                                          "leave it out to use $KUBECONFIG or ~/.kube/config")
        loaded = {p: _parsed(p) for p in dict.fromkeys(paths) if given or p.is_file()}
        # the Python client refuses an empty file that kubectl skips
        files = [p for p, doc in loaded.items() if doc is not None or given]
        if files:
            # pinned now: a later `kubectl config use-context` must not send the revert (from
            # the watchdog or `chaos recover`) to another cluster
            current = next((str(doc["current-context"]) for doc in loaded.values()
                            if isinstance(doc, dict) and doc.get("current-context")), None)
            return cls(os.pathsep.join(map(str, files)), context or current)
        if os.environ.get("KUBERNETES_SERVICE_HOST") and (SERVICE_ACCOUNT_DIR / "token").exists():
            return cls(None, None, in_cluster=True)
        looked = f"KUBECONFIG={env} names no file that exists and is not empty" if env else \
            "no $KUBECONFIG, no ~/.kube/config"
        raise ClusterUnreachable(f"no kubeconfig found ({looked}) and not running in a pod "
                                 "with a service account")

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Connection:
        return cls(spec.get("kubeconfig"), spec.get("context"), bool(spec.get("in_cluster")))

    def as_spec(self) -> dict[str, Any]:
        return {"kubeconfig": self.kubeconfig, "context": self.context,
                "in_cluster": self.in_cluster}

    def describe(self) -> str:
        if self.in_cluster:
            return "the in-cluster service account"
        context = f"context {self.context}" if self.context else "the current context"
        return f"{context} of {self.kubeconfig}"

    def default_namespace(self) -> str:
        """The namespace kubectl would use: the context's, the service account's, or default."""
        if self.in_cluster:
            try:
                return (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip() or "default"
            except OSError:
                return "default"
        from kubernetes import config

        try:
            contexts, current = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                config_file=self.kubeconfig)
        except Exception:  # noqa: BLE001 - reported when the client is built
            return "default"
        chosen = next((c for c in contexts if c.get("name") == self.context), current) or {}
        return str(chosen.get("context", {}).get("namespace") or "default")


def _parsed(path: Path) -> Any:
    """The kubeconfig's document: None for an empty file, "" for one that cannot be read or
    parsed (kept: the error is reported, with the file's name, when the client is built)."""
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return ""


_clients: dict[Connection, Any] = {}
_clients_lock = threading.Lock()


def client_for(conn: Connection) -> Any:
    """One kubernetes ApiClient per connection per process (its connection pool is shared)."""
    with _clients_lock:
        if conn not in _clients:
            _clients[conn] = _build(conn)
        return _clients[conn]


def _build(conn: Connection) -> Any:
    import logging

    import yaml
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    # urllib3 retries a refused connection and warns about each retry; the call's one error
    # (api.Unreachable) says it better, once
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    try:
        if conn.in_cluster:
            configuration = client.Configuration()
            configuration.retries = _retries()
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration)
            return client.ApiClient(configuration)
        configuration = client.Configuration()
        configuration.retries = _retries()
        return config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=conn.kubeconfig, context=conn.context,
            client_configuration=configuration)
    except ConfigException as exc:
        names = _contexts_in(conn.kubeconfig)
        if conn.context and names is not None and conn.context not in names:
            raise ClusterUnreachable(
                f"context {conn.context} is not in {conn.kubeconfig} (its contexts: "
                f"{', '.join(names) or 'none'})",
                hint="pick one of its contexts (`kubectl config get-contexts` lists them) in "
                     "`kubernetes: {context: ...}` (chaos inject, chaos recover: --context)"
            ) from exc
        listed = f"; its contexts: {', '.join(names)}" if names else ""
        raise ClusterUnreachable(f"cannot use {conn.describe()}: {exc}{listed}") from exc
    except OSError as exc:
        raise PermissionDenied(f"cannot read {exc.filename or conn.kubeconfig}: "
                               f"{exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        name = mark.name if mark and os.path.isfile(mark.name) else conn.kubeconfig
        raise ClusterUnreachable(f"cannot use {name}: not valid YAML{where}",
                                 hint="fix the kubeconfig (`kubectl config view` reads it), or "
                                      "name another with `kubernetes: {kubeconfig: ...}`") from exc


def _retries() -> Any:
    """urllib3's 3 retries, but none after a read timeout: an API server that does not answer
    within the timeout (api.TIMEOUT) is not asked three more times -- that made a silent server
    cost 2 minutes per call, not 30 s. Refused connections are still tried again."""
    from urllib3.util.retry import Retry

    return Retry(total=3, read=0)


_handshake = threading.local()  # .timeout: this thread's websocket connect limit, if any


@contextlib.contextmanager
def websocket_handshake_within(seconds: float) -> Iterator[None]:
    """Websockets opened by this thread inside the block (exec, attach) give up connecting
    after `seconds`. The client opens them with no timeout at all and offers no per-call
    setting (kubernetes-client/python#602, #1086): an API server, or a proxy before it, that
    takes the connection and never answers the upgrade would hold the thread, and the runner's
    exit that joins it, forever. So its websocket class is swapped, once, for one that reads
    the limit from this thread's block, and behaves as the original everywhere else (another
    library in the process using the client sees no change)."""
    _install_bounded_websocket()
    previous = getattr(_handshake, "timeout", None)
    _handshake.timeout = seconds
    try:
        yield
    finally:
        _handshake.timeout = previous


def _install_bounded_websocket() -> bool:
    """Swap `kubernetes.stream.ws_client.WebSocket` (what its create_websocket instantiates)
    for the bounded class; False, with a warning, if the client no longer opens websockets
    that way (tests/kubernetes check that it does)."""
    import websocket
    from kubernetes.stream import ws_client

    current = getattr(ws_client, "WebSocket", None)
    if getattr(current, "chaos_bounded", False):
        return True
    if current is not websocket.WebSocket or \
            "WebSocket" not in ws_client.create_websocket.__code__.co_names:
        log.warning("the kubernetes client no longer opens websockets through "
                    "ws_client.WebSocket: exec handshakes are not time-limited")
        return False

    class Bounded(websocket.WebSocket):
        chaos_bounded = True

        def connect(self, url: str, **options: Any) -> None:
            limit = getattr(_handshake, "timeout", None)
            if limit is not None:  # the socket keeps it for later reads too
                options.setdefault("timeout", limit)
            super().connect(url, **options)  # type: ignore[no-untyped-call]

    setattr(ws_client, "WebSocket", Bounded)  # noqa: B010 - not an exported name
    return True


def expiry(duration: float, now: float | None = None) -> str:
    """When a mark we leave in the cluster counts as abandoned, as an RFC 3339 UTC timestamp."""
    at = (now if now is not None else datetime.datetime.now(datetime.UTC).timestamp())
    stamp = datetime.datetime.fromtimestamp(at + duration + EXPIRY_GRACE, datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def expired(meta: Mapping[str, Any], now: float | None = None) -> bool:
    """True when the object's expiry annotation has passed (or is missing or unreadable)."""
    text = (meta.get("annotations") or {}).get(ANNOTATION_EXPIRES)
    try:
        at = datetime.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.UTC)
    except ValueError:
        return True
    current = now if now is not None else datetime.datetime.now(datetime.UTC).timestamp()
    return at.timestamp() <= current


def marks(run_id: str, duration: float, fault: str) -> dict[str, dict[str, str]]:
    """Labels and annotations for everything we create or change."""
    return {"labels": {LABEL_RUN: run_id},
            "annotations": {ANNOTATION_EXPIRES: expiry(duration), ANNOTATION_FAULT: fault}}


def unmarks(extra_annotations: tuple[str, ...] = ()) -> dict[str, dict[str, None]]:
    """A merge patch that removes our marks."""
    annotations = dict.fromkeys((ANNOTATION_EXPIRES, ANNOTATION_FAULT, *extra_annotations))
    return {"labels": {LABEL_RUN: None}, "annotations": annotations}


def _contexts_in(kubeconfig: str | None) -> list[str] | None:
    """The names of the kubeconfig's contexts; None when it cannot be read."""
    from kubernetes import config

    try:
        contexts, _ = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=kubeconfig)
    except Exception:  # noqa: BLE001 - the file itself is the problem; said already
        return None
    return [str(c.get("name")) for c in contexts or ()]
