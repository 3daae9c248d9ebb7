"""Resource faults on this machine: CPU, memory, IO, descriptors and threads held by worker
processes (chaos.adapters.local.burner), and disk fill held by one file.

Everything that depends on the machine (cores, RAM, free space, a writable path) is checked in
`resolve`, which the runner calls for every fault before anything starts, so a fault that cannot
be held safely is refused with exit 2 and nothing is injected. The revert spec names each
worker (pid + create time, and a random tag in its command line, which finds workers started
after the `intent` record but before `applied`) and each file; `revert` kills the workers still
alive and removes the files, from any process.

With a `process` target the workers join that process's cgroups (v1 hierarchies and v2), so
the process feels the load: its CPU quota, memory.max or pids.max is shared with them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import psutil

from chaos.adapters.base import Adapter, RevertOutcome, RevertSpec, Scope, TargetRef
from chaos.adapters.local.process import resolve_processes, same_process
from chaos.adapters.local.resource_recipes import (
    CGROUP_FAULTS,
    FILE_PREFIXES,
    HOST_FAULTS,
    RECIPES,
    ResourceRecipe,
    _fmt,
    label_of,
    plan_of,
    recipe,
)
from chaos.errors import FaultFailed, PermissionDenied
from chaos.lifetime import die_with_parent
from chaos.model.experiment import FaultSpec

log = logging.getLogger(__name__)

NAME = "local.resource"
WORKER = "chaos.adapters.local.burner"
READY_TIMEOUT = 15.0  # a worker must hold its load (memory touched) within this
_children: dict[int, subprocess.Popen[bytes]] = {}  # workers this process started, to reap


# --- cgroups of a target process


def _cgroup_mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, root, controllers) of each cgroup hierarchy; controllers empty for v2."""
    mounts = []
    with open("/proc/self/mountinfo") as file:
        for line in file:
            head, _, tail = line.partition(" - ")
            fields, rest = head.split(), tail.split()
            if rest and rest[0] in ("cgroup", "cgroup2"):
                options = set(rest[2].split(",")) if rest[0] == "cgroup" else set()
                mounts.append((fields[4], fields[3], options))
    return mounts


def cgroup_procs_files(pid: int) -> list[str]:
    """The cgroup.procs files that put a process beside `pid` in every hierarchy."""
    files = []
    mounts = _cgroup_mounts()
    with open(f"/proc/{pid}/cgroup") as file:
        for line in file:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            wanted = set(controllers.split(",")) if controllers else set()
            for mount, root, options in mounts:
                if (wanted and wanted <= options) or (not wanted and not options):
                    relative = path[len(root):] if root != "/" and path.startswith(root) else path
                    files.append(os.path.join(mount, relative.lstrip("/"), "cgroup.procs"))
                    break
    return files


# --- workers

def _argv(tag: str, deadline: float, mode: str, args: list[str], joins: list[str],
          core: int | None = None) -> list[str]:
    argv = [sys.executable, "-m", WORKER, "--tag", tag, "--deadline", f"{deadline:.3f}",
            "--parent", str(os.getpid())]
    for path in joins:
        argv += ["--join", path]
    if core is not None:
        argv += ["--core", str(core)]
    return argv + [mode, *args]



def worker_argvs(recipe: ResourceRecipe, plan: Mapping[str, Any], tag: str, deadline: float,
                 joins: list[str], files: list[str]) -> list[list[str]]:
    assert recipe.workers is not None
    return [_argv(tag, deadline, mode, args, joins, core)
            for mode, args, core in recipe.workers(plan, files)]


async def _ready(proc: subprocess.Popen[bytes]) -> str:
    """The worker's first line: "ready", or why it could not hold its load."""
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), READY_TIMEOUT)
    except TimeoutError:
        return f"not ready within {READY_TIMEOUT:g}s"
    text = line.decode(errors="replace").strip()
    if text == "ready":
        return ""
    return text.removeprefix("error: ") or f"exited with status {proc.poll()}"


def _start(argv: list[str]) -> subprocess.Popen[bytes]:
    # Started from the event loop's thread: PR_SET_PDEATHSIG fires when the thread that forked
    # the worker ends, and a thread pool's thread would end long before the runner. The
    # preexec function only calls prctl and getppid, which are safe after fork with threads.
    pdeathsig = die_with_parent(signal.SIGTERM)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, preexec_fn=pdeathsig)  # noqa: PLW1509
    _children[proc.pid] = proc
    return proc


def fill(path: str, size: int) -> None:
    """Allocate `size` bytes in a new file: fallocate, or writing zeros where unsupported."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
        zeros = bytes(1 << 20)
        for offset in range(0, size, len(zeros)):
            os.write(fd, zeros[: min(len(zeros), size - offset)])
        os.fsync(fd)
    finally:
        os.close(fd)


def _tagged(tag: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if WORKER in cmd and tag in cmd:
            found.append(proc)
    return found


def _kill(proc: psutil.Process) -> bool:
    try:
        proc.kill()
    except psutil.NoSuchProcess:
        return False
    child = _children.pop(proc.pid, None)
    if child is not None:
        child.wait(5)
        if child.stdout is not None:
            child.stdout.close()
    return True


async def _gone(procs: list[psutil.Process], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while any(_alive(p) for p in procs):
        if time.monotonic() > end:
            raise FaultFailed("resource workers did not exit within 5s after SIGKILL: "
                              + ", ".join(str(p.pid) for p in procs))
        await asyncio.sleep(0.02)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def throughput(proc: psutil.Process) -> str:
    """What an IO worker achieved, from the kernel's counters (/proc/PID/io)."""
    try:
        io, took = proc.io_counters(), max(1e-3, time.time() - proc.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "unknown"
    return f"read {_fmt(io.read_chars / took)}/s, wrote {_fmt(io.write_chars / took)}/s"


@dataclass(frozen=True)
class ResourceSpec(RevertSpec):
    """The workers (pid + create time) and files of a resource fault; the tag in the workers'
    command lines also finds workers started after `intent` but before `applied`."""

    fault: str = ""
    tag: str = ""
    workers: tuple[Mapping[str, Any], ...] = ()
    files: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**self.header(), "fault": self.fault, "tag": self.tag,
                "workers": [dict(w) for w in self.workers], "files": list(self.files)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        cls.check_version(data)
        return cls(str(data["adapter"]), str(data.get("fault")), str(data.get("tag")),
                   tuple(data.get("workers", ())), tuple(data.get("files", ())))


async def revert_resource(spec: ResourceSpec) -> RevertOutcome:
    victims = []
    for worker in spec.workers:
        proc = same_process(worker["pid"], worker["create_time"])
        if proc is not None:
            victims.append(proc)
    known = {p.pid for p in victims}
    victims += [p for p in _tagged(spec.tag) if p.pid not in known]
    if spec.fault in RECIPES and RECIPES[spec.fault].report_throughput:
        for proc in victims:
            log.info("%s worker %s: %s", spec.fault, proc.pid, throughput(proc))
    killed = [p for p in victims if _kill(p)]
    await _gone(killed)
    for worker in spec.workers:  # ours, ended by themselves: reap them
        child = _children.pop(worker["pid"], None)
        if child is not None:
            child.wait(5)
            if child.stdout is not None:
                child.stdout.close()
    removed = 0
    for path in spec.files:
        if os.path.basename(path).startswith(FILE_PREFIXES):
            try:
                os.unlink(path)
                removed += 1
            except FileNotFoundError:
                pass
    return "reverted" if killed or removed else "gone"


class HostResourceAdapter(Adapter):
    name = NAME
    target_kind = "host"
    fault_types: ClassVar[tuple[str, ...]] = HOST_FAULTS

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        plan = plan_of(fault)
        host = socket.gethostname()
        key = f"host:{fault.type}:{plan.get('path', '')}"
        return [TargetRef("host", f"host {host}: {label_of(fault, plan)}",
                          {"host": host, "plan": plan}, lock_key=key)]

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        tag = secrets.token_hex(8)
        files = recipe(fault).files(target.identity["plan"], tag)
        return ResourceSpec(NAME, fault.type, tag, files=tuple(files)).to_json()

    def _joins(self, target: TargetRef) -> list[str]:
        return []

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        plan, typed = target.identity["plan"], ResourceSpec.from_json(spec)
        if recipe(fault).workers is None:
            try:
                await asyncio.to_thread(fill, plan["file"], plan["bytes"])
            except OSError as exc:
                raise FaultFailed(f"cannot fill {plan['file']}: {exc.strerror or exc}") from exc
            return typed.to_json()
        deadline = time.time() + fault.duration + 5.0 + 0.1 * fault.duration
        argvs = worker_argvs(recipe(fault), plan, typed.tag, deadline, self._joins(target),
                             list(typed.files))
        procs = [_start(argv) for argv in argvs]
        refined = dataclasses.replace(typed, workers=tuple(
            {"pid": p.pid, "create_time": psutil.Process(p.pid).create_time()} for p in procs))
        problems = [why for why in await asyncio.gather(*(_ready(p) for p in procs)) if why]
        if problems:
            await revert_resource(refined)
            if "cgroup" in problems[0]:
                raise PermissionDenied(f"{fault.name}: {problems[0]}",
                                       hint="run as root with the cgroup filesystems writable, "
                                            "or use target: {host: local}")
            raise FaultFailed(f"{fault.name}: a worker could not start: {problems[0]}")
        return refined.to_json()

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        return await revert_resource(ResourceSpec.from_json(spec))


class ProcessResourceAdapter(HostResourceAdapter):
    """The same workers, placed in a target process's cgroups; reverted by `local.resource`."""

    name = "local.resource.cgroup"
    target_kind = "process"
    fault_types = CGROUP_FAULTS

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        plan = plan_of(fault)
        return [TargetRef("process", f"{ref.label}'s cgroup: {label_of(fault, plan)}",
                          ref.identity, f"{fault.type}:{ref.lock_key}", ref.pids)
                for ref in await resolve_processes(fault, scope, {"plan": plan})]

    def _joins(self, target: TargetRef) -> list[str]:
        ident = target.identity
        if same_process(ident["pid"], ident["create_time"]) is None:
            raise FaultFailed(f"{target.label} exited before its cgroup could be joined")
        try:
            files = cgroup_procs_files(ident["pid"])
        except OSError as exc:
            raise PermissionDenied(f"cannot read the cgroups of pid {ident['pid']}: "
                                   f"{exc.strerror or exc}") from exc
        if not files:
            raise PermissionDenied(f"pid {ident['pid']}'s cgroups are not mounted here",
                                   hint="use target: {host: local}")
        return files
