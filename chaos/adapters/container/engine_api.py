"""The call boundary to the container engine: the Docker Engine API over its socket.

Docker and Podman (through its Docker-compatible socket) speak the same API. The `docker` SDK is
imported here only, inside functions, so `chaos --help` and `chaos validate` never load it.
Blocking SDK calls run in a thread; every backend error is mapped once, here, to the chaos error
tree with what to do (no socket, permission denied, API refusals). `DOCKER_HOST` is honoured,
and the revert spec records the engine's address, so the watchdog and `chaos recover` reach the
same engine from any process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from chaos.errors import FaultFailed, PermissionDenied, TargetNotFound, truncate

T = TypeVar("T")
DEFAULT_HOST = "unix:///var/run/docker.sock"
TIMEOUT = 30.0  # seconds per API call; `stop` with a grace period adds that period
REACH_HINT = ("start the engine (Docker: `dockerd` / `systemctl start docker`; Podman: "
              "`systemctl --user start podman.socket` and DOCKER_HOST=unix://$XDG_RUNTIME_DIR/"
              "podman/podman.sock), or point DOCKER_HOST at its socket")
PERMISSION_HINT = ("run chaos as root, or as a user of the `docker` group (for Podman: the "
                   "user that owns the podman socket)")

_clients: dict[str, Any] = {}
_lock = threading.Lock()


class Missing(Exception):
    """The container does not exist (any more)."""


def engine_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def client(host: str) -> Any:
    """One low-level API client per engine address (cached: a version handshake each is slow)."""
    with _lock:
        api = _clients.get(host)
        if api is None:
            import docker  # lazy: only container faults pay for it

            with mapped(host):
                api = docker.APIClient(base_url=host, timeout=int(TIMEOUT), version="auto")
            _clients[host] = api
        return api


@contextlib.contextmanager
def mapped(host: str, what: str = "") -> Iterator[None]:
    """Backend errors -> chaos errors, raised from the original."""
    import docker.errors
    import requests

    try:
        yield
    except docker.errors.NotFound as exc:
        raise Missing(str(exc)) from exc
    except docker.errors.APIError as exc:
        text = truncate(str(getattr(exc, "explanation", None) or exc), 200)
        if exc.status_code in (401, 403):
            raise PermissionDenied(f"the container engine at {host} refused {what}: {text}",
                                   hint=PERMISSION_HINT) from exc
        raise FaultFailed(f"the container engine refused {what}: {text}") from exc
    except (docker.errors.DockerException, requests.exceptions.ConnectionError,
            OSError) as exc:
        text = truncate(str(exc), 200)
        if "ermission denied" in text:
            raise PermissionDenied(f"permission denied on the container engine's socket "
                                   f"({host})", hint=PERMISSION_HINT) from exc
        raise PermissionDenied(f"cannot reach a container engine at {host}: {text}",
                               hint=REACH_HINT) from exc


async def call(host: str, what: str, fn: Callable[[Any], T]) -> T:
    """fn(api client) in a thread, errors mapped; `what` names the call in messages."""
    def run() -> T:
        api = client(host)
        with mapped(host, what):
            return fn(api)

    return await asyncio.to_thread(run)


async def inspect(host: str, container_id: str) -> dict[str, Any] | None:
    """The container's full inspect document, or None if it no longer exists."""
    try:
        found: dict[str, Any] = await call(host, f"inspect {container_id[:12]}",
                                           lambda api: api.inspect_container(container_id))
    except Missing:
        return None
    return found


def not_found(what: str) -> TargetNotFound:
    return TargetNotFound(what, hint="`docker ps -a` lists the containers (the selector needs "
                                     "running ones)")
