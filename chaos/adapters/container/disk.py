"""resource.disk_fill inside a container's own filesystem: one file, reached through /proc.

The file is the local disk fill's (chaos.adapters.local.resource: fallocate, zeros where that is
unsupported), created through /proc/PID/root of the container's main process, so it lands in
the container's mount namespace — its writable layer, a volume or a tmpfs mounted there — and
the size is planned from that filesystem's free space as the container sees it (a tmpfs's
`size=`, a quota'd layer). No component of the path may be a symbolic link: through /proc an
absolute link would resolve against this host's root, not the container's.

The revert spec names the container (id, start time, main pid + create time, engine) and the
file's path inside it. A revert from any process removes the file through the same main
process, checked from /proc; if that process is gone, the engine says where the container is
now: restarted, its writable layer (and the file) is still there and is reached through the new
main process; stopped, the file is removed from the layer's directory on the host (or the
volume's); removed, nothing is left ("gone").
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from chaos.adapters.base import Adapter, RevertOutcome, RevertSpec, Scope, TargetRef
from chaos.adapters.container import engine_api, selection
from chaos.adapters.local.resource import fill
from chaos.adapters.local.resource_recipes import (
    FILE_FAULTS,
    FILE_PREFIXES,
    _refuse,
    label_of,
    plan_disk_fill,
)
from chaos.errors import FaultFailed, GuardRefused, PermissionDenied
from chaos.model.experiment import FaultSpec

NAME = "container.disk"


def root_of(pid: int) -> str:
    return f"/proc/{pid}/root"


def no_links(fault: FaultSpec, root: str, inside: str, where: str) -> None:
    """Refuse a path that crosses a symbolic link inside the container (see the docstring)."""
    walked = ""
    for part in inside.strip("/").split("/"):
        walked += f"/{part}"
        try:
            mode = os.lstat(root + walked).st_mode
        except FileNotFoundError:
            return  # _directory says it does not exist
        if stat.S_ISLNK(mode):
            raise _refuse(fault, "path", f"{walked}{where} is a symbolic link "
                          f"(to {os.readlink(root + walked)})",
                          "give the directory it points to")


def plan_in(fault: FaultSpec, info: Mapping[str, Any], pid: int) -> dict[str, Any]:
    inside = str(fault.params["path"])
    where = f" in container {selection.container_name(info)}"
    if not inside.startswith("/"):
        raise _refuse(fault, "path", f"{inside!r} is relative: a container has no working "
                      "directory chaos could use", "give an absolute path inside the container")
    inside = os.path.normpath(inside)
    root = root_of(pid)
    try:
        os.stat(root + "/")
    except PermissionError as exc:
        raise PermissionDenied(f"{fault.name}: cannot reach the filesystem of container "
                               f"{selection.container_name(info)} through {root}",
                               hint="run chaos as root (or with CAP_SYS_PTRACE) on the "
                                    "engine's host") from exc
    no_links(fault, root, inside, where)
    plan = plan_disk_fill(fault, root, where)
    name = os.path.basename(plan["file"])
    return {**plan, "path": inside, "file": os.path.join(inside, name)}


def stopped_path(info: Mapping[str, Any], inside: str) -> str | None:
    """Where a file at `inside` lives on the host while the container is stopped: in the
    volume or bind mount holding it, else in the writable layer; None in a tmpfs (gone)."""
    mounts = sorted(info.get("Mounts") or [], key=lambda m: len(str(m.get("Destination"))))
    for mount in reversed(mounts):
        dest = str(mount.get("Destination") or "").rstrip("/")
        if dest and (inside == dest or inside.startswith(dest + "/")):
            if mount.get("Type") == "tmpfs" or not mount.get("Source"):
                return None
            return str(mount["Source"]) + inside[len(dest):]
    tmpfs = (info.get("HostConfig") or {}).get("Tmpfs") or {}
    if any(inside == d or inside.startswith(d.rstrip("/") + "/") for d in tmpfs):
        return None
    upper = ((info.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir")
    return f"{upper}{inside}" if upper else None


@dataclass(frozen=True)
class DiskSpec(RevertSpec):
    """The filled file as the container sees it, and the container (engine, id, main process)
    through which this process reaches it."""

    fault: str = ""
    container: Mapping[str, Any] | None = None
    file: str = ""

    def to_json(self) -> dict[str, Any]:
        return {**self.header(), "fault": self.fault, "container": dict(self.container or {}),
                "file": self.file}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        cls.check_version(data)
        return cls(str(data["adapter"]), str(data.get("fault")), dict(data["container"]),
                   str(data.get("file")))


async def reachable(spec: DiskSpec) -> str | None:
    """The file's path as this process reaches it now, or None if the container is gone."""
    ident, inside = spec.container or {}, spec.file
    if selection.main_process_alive(ident):
        return root_of(int(ident["pid"])) + inside
    info = await engine_api.inspect(str(ident["docker_host"]), str(ident["id"]))
    if info is None:
        return None
    state = info.get("State") or {}
    pid = int(state.get("Pid") or 0)
    if state.get("Running") and pid > 0:
        return root_of(pid) + inside
    return stopped_path(info, inside)


def remove(path: str) -> bool:
    try:
        os.unlink(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


class ContainerDiskAdapter(Adapter):
    created_by_services = True  # `docker run` services start containers
    name = NAME
    target_kind = "container"
    fault_types: ClassVar[tuple[str, ...]] = FILE_FAULTS

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        host, infos = await selection.resolve_containers(fault, scope)
        refs = []
        for info in infos:
            if (info.get("State") or {}).get("Paused"):
                raise GuardRefused(f"{fault.name}: container {selection.container_name(info)} "
                                   "is paused: its processes could not react to a full disk "
                                   "until it is unpaused",
                                   hint="unpause it first (`docker unpause NAME`), or fill "
                                        "its disk before or after the pause")
            ref = selection.visible(selection.container_ref(info, host, fault), fault)
            plan = plan_in(fault, info, int(ref.identity["pid"]))
            refs.append(dataclasses.replace(
                ref, label=f"{ref.label}: {label_of(fault, plan)}",
                lock_key=f"{ref.lock_key}:{plan['path']}",
                identity={**ref.identity, "plan": plan}))
        return refs

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        ident = {k: v for k, v in target.identity.items() if k != "plan"}
        return DiskSpec(NAME, fault.type, ident, str(target.identity["plan"]["file"])).to_json()

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        plan, ident = target.identity["plan"], target.identity
        if not selection.main_process_alive(ident):
            raise FaultFailed(f"{target.label}: the container stopped before its disk was "
                              "filled")
        where = root_of(int(ident["pid"])) + plan["file"]
        try:
            await asyncio.to_thread(fill, where, plan["bytes"])
        except OSError as exc:
            remove(where)  # a partial file holds space too
            raise FaultFailed(f"cannot fill {plan['file']} in {target.label}: "
                              f"{exc.strerror or exc}") from exc
        return spec

    async def revert(self, data: Mapping[str, Any]) -> RevertOutcome:
        spec = DiskSpec.from_json(data)
        if not os.path.basename(spec.file).startswith(FILE_PREFIXES):
            return "nothing"  # never remove a file chaos did not name
        path = await reachable(spec)
        if path is None:
            return "gone"
        return "reverted" if await asyncio.to_thread(remove, path) else "gone"
