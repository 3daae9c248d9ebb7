"""Which containers a fault hits: selectors, guards, `count`/`percent` from the run's seed.

A container's identity is its id *and* the start time of its current run (State.StartedAt),
plus its main process (pid and that process's create time): a container restarted by its
restart policy or replaced by Compose is a different target, so a revert finds it "gone"
(the fault went with the old run) and never touches the new one. The pid and create time let
the network and resource reverts check that identity from /proc alone, without the engine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from chaos.adapters.base import Scope, TargetRef
from chaos.adapters.container import engine_api
from chaos.adapters.local.process import choose, same_process
from chaos.errors import GuardRefused, PermissionDenied, TargetNotFound
from chaos.faults.container import SELECTORS
from chaos.model.experiment import FaultSpec

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
_ENGINE_FILES = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")


def filters_of(sel: Mapping[str, Any]) -> dict[str, list[str]]:
    """Engine-side filters (`docker ps --filter`); the name is matched exactly afterwards."""
    filters: dict[str, list[str]] = {}
    labels = [str(sel["label"])] if sel.get("label") else []
    compose = sel.get("compose") or {}
    if compose.get("project"):
        labels.append(f"{COMPOSE_PROJECT}={compose['project']}")
    if compose.get("service"):
        labels.append(f"{COMPOSE_SERVICE}={compose['service']}")
    if labels:
        filters["label"] = labels
    if sel.get("id"):
        filters["id"] = [str(sel["id"])]
    if sel.get("image"):
        filters["ancestor"] = [str(sel["image"])]
    if sel.get("name"):
        # Docker matches the regex against "/name", Podman's compat API against "name"
        filters["name"] = [f"^/?{re.escape(str(sel['name']))}$"]
    return filters


def describe(sel: Mapping[str, Any]) -> str:
    parts = [f"{k}={sel[k]}" for k in SELECTORS if sel.get(k) and k != "compose"]
    compose = sel.get("compose") or {}
    if compose.get("project") or compose.get("service"):
        parts.append(f"compose={compose.get('project') or '*'}/{compose.get('service') or '*'}")
    return ", ".join(parts) or "(empty)"


def container_ids_in(text: str) -> set[str]:
    """Container ids named in /proc/self/cgroup or mountinfo text (Docker's and Podman's
    cgroup paths, the engine's /etc/hostname bind mount). Of mountinfo, only the files the
    engine binds into a container count: on a Podman host, each container's shm mount
    (.../containers/storage/.../<id>/userdata/shm) is in the host's own mountinfo."""
    found: set[str] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] not in _ENGINE_FILES:
            continue  # a mountinfo line, not for a file the engine binds into its container
        if "docker" in line or "libpod" in line or "containers" in line:
            found.update(_CONTAINER_ID.findall(line))
    return found


def own_container_ids() -> set[str]:
    """Container ids this process runs in; empty on a host."""
    found: set[str] = set()
    for path in ("/proc/self/cgroup", "/proc/self/mountinfo"):
        try:
            found |= container_ids_in(Path(path).read_text())
        except OSError:
            continue
    return found


def identity(info: Mapping[str, Any], host: str) -> dict[str, Any]:
    state = info.get("State") or {}
    pid = int(state.get("Pid") or 0)
    create_time = _create_time(pid)
    return {"id": info["Id"], "name": str(info.get("Name", "")).lstrip("/"),
            "started_at": state.get("StartedAt"), "pid": pid, "create_time": create_time,
            "docker_host": host}


def _create_time(pid: int) -> float:
    try:
        return float(psutil.Process(pid).create_time()) if pid > 0 else 0.0
    except psutil.NoSuchProcess:
        return 0.0


def container_ref(info: Mapping[str, Any], host: str, fault: FaultSpec,
                  label: str = "") -> TargetRef:
    ident = identity(info, host)
    name = ident["name"] or ident["id"][:12]
    return TargetRef(kind="container", label=f"container {name} ({ident['id'][:12]}){label}",
                     identity=ident, lock_key=f"container:{ident['id']}:{fault.type}",
                     pids=(ident["pid"],) if ident["pid"] else ())


def same_run(info: Mapping[str, Any] | None, ident: Mapping[str, Any]) -> bool:
    """The container still runs the very process the fault was injected into."""
    if info is None:
        return False
    state = info.get("State") or {}
    return bool(state.get("StartedAt") == ident.get("started_at")
                and int(state.get("Pid") or 0) == ident.get("pid"))


def main_process_alive(ident: Mapping[str, Any]) -> bool:
    """The container's main process, checked from /proc (pid and create time): no engine."""
    pid, created = int(ident.get("pid") or 0), float(ident.get("create_time") or 0.0)
    return pid > 0 and same_process(pid, created) is not None


def visible(ref: TargetRef, fault: FaultSpec) -> TargetRef:
    """Network and resource faults act on the main process from this host: it must be seen."""
    if not main_process_alive(ref.identity):
        raise PermissionDenied(f"{fault.name}: {ref.label}: its main process (pid "
                               f"{ref.identity['pid']}) is not visible to chaos",
                               hint="run chaos on the engine's host, in its PID namespace "
                                    "(`--pid host` when chaos itself runs in a container)")
    return ref


async def image_names(host: str, image: str) -> list[str]:
    """The image as given and every tag the engine knows it by: Podman's `ancestor` filter
    matches only the full name (`localhost/app:1`, `docker.io/library/redis:7`), not the short
    name a user types (which its image lookup resolves)."""
    try:
        info: dict[str, Any] = await engine_api.call(
            host, f"inspecting image {image}", lambda api: api.inspect_image(image))
    except engine_api.Missing:
        return [image]
    tags = [str(t) for t in info.get("RepoTags") or [] if t and t != image]
    return [image, *tags]


async def matching(fault: FaultSpec, sel: Mapping[str, Any] | None = None,
                   ) -> tuple[str, list[dict[str, Any]]]:
    """(engine address, inspect documents of the running containers the selector matches);
    the fault's target selector unless another (a peer's) is given."""
    sel = fault.target.selector if sel is None else sel
    where = f"{fault.location}: " if fault.location else ""
    if not any(sel.get(k) for k in SELECTORS):
        raise TargetNotFound(f"{where}{fault.name}: the container selector is empty (it would "
                             "hit every container)",
                             hint="select by name, id, label, image or compose")
    host = engine_api.engine_host()
    filters = filters_of(sel)
    if sel.get("image"):
        filters["ancestor"] = await image_names(host, str(sel["image"]))
    listed: list[dict[str, Any]] = await engine_api.call(
        host, "listing containers",
        lambda api: api.containers(all=True, filters=filters))
    if sel.get("name"):  # the engine's name filter is a regex on any of the names
        listed = [c for c in listed if f"/{sel['name']}" in (c.get("Names") or [])]
    if not listed:
        raise engine_api.not_found(f"{where}{fault.name}: no container matches "
                                   f"{describe(sel)} (engine {host})")
    running = [c for c in listed if c.get("State") in ("running", "paused")]
    if not running:
        states = ", ".join(f"{(c.get('Names') or ['?'])[0].lstrip('/')} is "
                           f"{c.get('State')}" for c in listed[:5])
        raise TargetNotFound(f"{where}{fault.name}: no matching container is running "
                             f"({states})", hint="start it first (`docker start NAME`)")
    infos = []
    for summary in running:
        info = await engine_api.inspect(host, summary["Id"])
        if info is not None and (info.get("State") or {}).get("Running"):
            infos.append(info)
    if not infos:
        raise TargetNotFound(f"{where}{fault.name}: the matching containers stopped while "
                             "being selected")
    return host, sorted(infos, key=lambda i: str(i.get("Name")))


async def resolve_containers(fault: FaultSpec, scope: Scope) -> tuple[str, list[dict[str, Any]]]:
    """The containers a fault hits now: selector, guards, then count/percent by the seed."""
    host, infos = await matching(fault)
    chosen = choose(infos, fault.target.count, fault.target.percent, scope.seed + fault.index)
    chosen = sorted(chosen, key=lambda i: str(i.get("Name")))
    mine = own_container_ids()
    for info in chosen:
        name = str(info.get("Name", "")).lstrip("/")
        if info["Id"] in mine:
            raise GuardRefused(f"{fault.name}: refusing to target container {name}: chaos "
                               "itself runs in it", hint="run chaos outside the containers it "
                                                         "targets (on the host, or in another "
                                                         "container with the engine's socket)")
    return host, chosen


def container_name(info: Mapping[str, Any]) -> str:
    return str(info.get("Name", "")).lstrip("/") or str(info["Id"])[:12]


def in_host_network(info: Mapping[str, Any]) -> bool:
    return str((info.get("HostConfig") or {}).get("NetworkMode")) == "host"


def addresses(info: Mapping[str, Any]) -> list[str]:
    """The container's IP addresses on its networks (IPv4, then IPv6)."""
    networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
    found = [n.get("IPAddress") for n in networks.values()]
    found += [n.get("GlobalIPv6Address") for n in networks.values()]
    return [str(a) for a in found if a]


def netns_path(pid: int) -> str:
    return os.path.join("/proc", str(pid), "ns", "net")
