"""The one door to the Kubernetes API: blocking client calls in a thread, errors mapped here.

Every call names the verb and resource it needs (as RBAC does), so a 403 says exactly which
rule is missing and which shipped Role grants it, and the tests can compare the calls made with
the Role. Answers are plain JSON dicts (`_preload_content=False`): no model classes to build for
a thousand pods, and the same shapes the revert specs and the journal hold.

    401               -> PermissionDenied: the credentials were refused
    403               -> PermissionDenied: names verb, group/resource, namespace, the Role to apply
    404               -> Gone (a TargetNotFound): the object is not there (reverts count it done)
    403 from a budget -> Refused: the Eviction API refusing for a PodDisruptionBudget's reason
                         (its Status names a poddisruptionbudget, not the resource we called)
    409               -> Conflict: changed under us (callers re-read and retry)
    429               -> Blocked: e.g. an eviction refused by a PodDisruptionBudget; reads (get,
                         list) are retried first with backoff, honouring Retry-After if given
    other             -> ApiFailed (a FaultFailed)
    no answer         -> Unreachable (an ApiFailed): a failed probe sample; while targets are
                         resolved, before anything is touched, a ClusterUnreachable (exit 2)

Response bodies are cut (chaos.errors.truncate) so tokens or object dumps never reach logs.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Mapping
from typing import Any

from chaos.adapters.kubernetes import rbac
from chaos.adapters.kubernetes.connection import Connection, client_for
from chaos.errors import FaultFailed, PermissionDenied, TargetNotFound, truncate

TIMEOUT = (5.0, 30.0)  # connect, read: every call is bounded
MERGE_PATCH = "application/merge-patch+json"
API_CLASSES = {"CoreV1Api", "AppsV1Api", "NetworkingV1Api", "PolicyV1Api", "AutoscalingV2Api",
               "BatchV1Api"}
# A 429 on a read is an overloaded or throttling API server (or a proxy in front of it): wait
# and ask again, Retry-After's seconds when it says, else 0.25 s doubling (1.75 s in all).
# client-go only retries a 429 that carries Retry-After (rest/request.go, checkWait); urllib3
# the same, so the answer without it is ours to retry.
READ_RETRIES = 3
READ_BACKOFF = 0.25
READ_VERBS = ("get", "list")


class Gone(TargetNotFound):
    """A 404. `named`: the Status names the missing object (details.name), as the API does for
    an object that is not there; a path the server does not serve at all names nothing (what
    `kubectl debug` tells apart to say "ephemeral containers are disabled")."""

    named = True


class Conflict(FaultFailed):
    pass


class Blocked(FaultFailed):
    def __init__(self, message: str, *, hint: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class Refused(FaultFailed):
    """The API refused this object for a reason of its own (not RBAC): retrying will not help."""


class ApiFailed(FaultFailed):
    pass


class Unreachable(ApiFailed):
    """The API server did not answer at all: refused, unresolvable, TLS, timed out."""

    hint = ("is the cluster up, and is this its address? `kubectl --context CONTEXT get pods` "
            "tries the same kubeconfig; or name another kubeconfig or context in the "
            "`kubernetes:` section (chaos inject: --kubeconfig, --context)")


def _reason(exc: BaseException) -> str:
    """The root cause of a urllib3 failure ("Connection refused"), not its retry wrapping."""
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError

    cause: BaseException | None = getattr(exc, "reason", None) or exc
    if isinstance(cause, ReadTimeoutError):
        return f"no answer within the read timeout ({TIMEOUT[1]:g}s)"
    if isinstance(cause, ConnectTimeoutError) and not isinstance(cause, NewConnectionError):
        return f"no connection within the connect timeout ({TIMEOUT[0]:g}s)"
    for _ in range(5):  # NewConnectionError -> ConnectionRefusedError, and the like
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        if cause is None or cause.__cause__ is None:
            break
        cause = cause.__cause__
    return truncate(str(getattr(exc, "reason", None) or exc), 200)


def _details(body: Any) -> dict[str, Any]:
    """The `details` of a Kubernetes Status body ({} when there are none)."""
    try:
        parsed = json.loads(body.decode("utf-8", "replace") if isinstance(body, bytes)
                            else str(body or ""))
    except ValueError:
        return {}
    details = parsed.get("details") if isinstance(parsed, dict) else None
    return details if isinstance(details, dict) else {}


def _retry_after(exc: Any) -> float | None:
    value = (getattr(exc, "headers", None) or {}).get("Retry-After")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _message(body: Any) -> str:
    """The `message` of a Kubernetes Status body, or the body itself, truncated."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict) and parsed.get("message"):
            text = str(parsed["message"])
    except ValueError:
        pass
    return truncate(text, 200)


def _details_name(body: Any) -> str:
    """details.name of a Kubernetes Status body ("" when absent or not a Status)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    try:
        parsed = json.loads(text)
    except ValueError:
        return ""
    details = parsed.get("details") if isinstance(parsed, dict) else None
    return str(details.get("name") or "") if isinstance(details, dict) else ""


def _rbac_hint(verb: str, group: str, resource: str) -> str:
    role, rule = rbac.rule_for(group, resource)
    name = rbac.ROLE_NAME if role == "Role" else rbac.CLUSTER_ROLE_NAME
    rule_text = (f"apiGroups: [\"{group}\"], resources: [\"{resource}\"], verbs: [\"{verb}\"]")
    where = "in the target's namespace" if role == "Role" else "cluster-wide"
    return (f"grant it {where}: apply deploy/kubernetes/ (the {role} {name} has this rule), "
            f"or add to your {role}: {{{rule_text}}}"
            + ("" if rule else " (chaos's shipped roles do not include it)"))


class Api:
    """Calls for one connection; counts them (the benchmark prints the counts)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.counts: Counter[tuple[str, str]] = Counter()

    async def call(self, verb: str, group: str, resource: str, namespace: str | None,
                   method: str, *args: Any, **kwargs: Any) -> Any:
        """`method` is "CoreV1Api.list_namespaced_pod"-style; returns the decoded JSON body (the
        text as is with `_as_text=True`: pods/log answers plain text)."""
        self.counts[verb, f"{group}/{resource}" if group else resource] += 1
        api_class, _, name = method.partition(".")
        if api_class not in API_CLASSES:
            raise ValueError(f"unknown API class {api_class}")
        for attempt in range(READ_RETRIES + 1):
            try:
                return await asyncio.to_thread(self._blocking, verb, group, resource, namespace,
                                               api_class, name, args, dict(kwargs))
            except Blocked as exc:
                if verb not in READ_VERBS or attempt == READ_RETRIES:
                    raise
                await asyncio.sleep(exc.retry_after if exc.retry_after is not None
                                    else READ_BACKOFF * 2 ** attempt)
        raise AssertionError("unreachable")

    def _blocking(self, verb: str, group: str, resource: str, namespace: str | None,
                  api_class: str, name: str, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Any:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        api = getattr(client, api_class)(client_for(self.conn))
        as_text = kwargs.pop("_as_text", False)
        kwargs.setdefault("_request_timeout", TIMEOUT)
        try:
            response = getattr(api, name)(*args, _preload_content=False, **kwargs)
            data = response.data
        except ApiException as exc:
            raise self._mapped(exc, verb, group, resource, namespace) from exc
        except HTTPError as exc:
            host = api.api_client.configuration.host
            raise Unreachable(f"cannot reach the Kubernetes API at {host} "
                              f"({self.conn.describe()}): {_reason(exc)}") from exc
        if as_text:
            return (data or b"").decode("utf-8", "replace")
        if not data:
            return {}
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ApiFailed(f"{verb} {resource}: the API answered with something that is not "
                            f"JSON: {truncate(data.decode('utf-8', 'replace'), 120)}") from exc

    def _mapped(self, exc: Any, verb: str, group: str, resource: str,
                namespace: str | None) -> Exception:
        status = int(exc.status or 0)
        detail = _message(exc.body)
        what = f"{verb} {group + '/' if group else ''}{resource}"
        where = f" in namespace {namespace}" if namespace else ""
        if status == 401:
            return PermissionDenied(
                f"the Kubernetes API refused our credentials (401 Unauthorized) to {what}"
                f"{where}, using {self.conn.describe()}",
                hint="the token or client certificate in the kubeconfig is invalid or expired: "
                     "log in again (e.g. refresh the cloud provider's credentials), or pick "
                     "another context with `kubernetes: {context: ...}`")
        details = _details(exc.body)
        if status == 403 and details.get("kind") == "poddisruptionbudget":
            return Refused(f"{what}{where}: refused by PodDisruptionBudget "
                           f"{details.get('name')}: {detail}")
        if status == 403:
            return PermissionDenied(
                f"not allowed to {what}{where} (403 Forbidden): {detail}",
                hint=_rbac_hint(verb, group, resource))
        if status == 404:
            gone = Gone(f"{what}{where}: not found ({detail})")
            gone.named = bool(_details_name(exc.body))
            return gone
        if status == 409:
            return Conflict(f"{what}{where}: conflict: {detail}")
        if status == 429:
            return Blocked(f"{what}{where}: refused for now (429): {detail}",
                           retry_after=_retry_after(exc))
        return ApiFailed(f"{what}{where} failed: HTTP {status or '?'}: {detail}")


_apis: dict[Connection, Api] = {}


_connections: dict[tuple[Any, ...], Connection] = {}


def _connection(settings: Mapping[str, Any] | None) -> Connection:
    """Resolved once per process and setting: probes ask every few hundred milliseconds, and
    resolving reads and parses every kubeconfig file (in the event loop). Once is also the
    point: a `kubectl config use-context` mid-run must not move the rest of the run."""
    settings = settings or {}
    key = (settings.get("kubeconfig"), settings.get("context"), os.environ.get("KUBECONFIG"))
    if key not in _connections:
        _connections[key] = Connection.from_settings(settings)
    return _connections[key]


def api_for(settings_or_conn: Any) -> Api:
    """The Api for a fault's `kubernetes` settings, or a revert spec's connection."""
    conn = settings_or_conn if isinstance(settings_or_conn, Connection) else \
        _connection(settings_or_conn)
    if conn not in _apis:
        _apis[conn] = Api(conn)
    return _apis[conn]


CLIENT_MINIMUM = (37, 0)  # the first kubernetes client whose models have from_dict


def model(name: str, data: dict[str, Any]) -> Any:
    """A request body as the client's model class (its methods validate body types)."""
    from kubernetes import __version__, client

    cls = getattr(client, name)
    if not hasattr(cls, "from_dict"):  # an install that ignored the pin in pyproject.toml
        raise ApiFailed(f"the installed kubernetes client {__version__} is older than "
                        f"{'.'.join(map(str, CLIENT_MINIMUM))}, which chaos needs",
                        hint=f"pip install 'kubernetes>={CLIENT_MINIMUM[0]}'")
    return cls.from_dict(data)
