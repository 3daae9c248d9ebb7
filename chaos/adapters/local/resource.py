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
from typing import Any, ClassVar

import psutil

from chaos.adapters.base import Adapter, RevertOutcome, Scope, TargetRef
from chaos.lifetime import die_with_parent
from chaos.adapters.local.process import resolve_processes, same_process
from chaos.errors import FaultFailed, PermissionDenied, UsageError
from chaos.model.experiment import FaultSpec

log = logging.getLogger(__name__)

NAME = "local.resource"
WORKER = "chaos.adapters.local.burner"
READY_TIMEOUT = 15.0  # a worker must hold its load (memory touched) within this
FILE_PREFIXES = ("chaos-fill-", "chaos-io-")  # revert removes no file not named like this
OOM_MARGIN = 0.05  # of RAM that must stay available unless `force`
IO_SPACE_MARGIN = 64 << 20  # or a tenth of a small filesystem, left free by IO workers
_children: dict[int, subprocess.Popen[bytes]] = {}  # workers this process started, to reap


def _fmt(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size}"


def _refuse(fault: FaultSpec, field: str, message: str, hint: str = "") -> UsageError:
    where = f"{fault.location}: " if fault.location else ""
    return UsageError(f"{where}faults[{fault.index}].with.{field}: {message}", hint=hint)


def meminfo() -> dict[str, int]:
    values = {}
    with open("/proc/meminfo") as file:
        for line in file:
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) * 1024
    return values


def _directory(fault: FaultSpec, root: str = "", where: str = "") -> str:
    """`with.path` as this process reaches it: under `root` (a container's /proc/PID/root),
    named in messages as the fault's reader knows it, plus `where` (" in container X")."""
    shown = os.path.abspath(str(fault.params["path"]))
    path = root + shown if root else shown
    if not os.path.isdir(path):
        what = "is not a directory" if os.path.exists(path) else "does not exist"
        raise _refuse(fault, "path", f"{shown}{where} {what}", "give an existing directory")
    read_only = os.statvfs(path).f_flag & os.ST_RDONLY
    if read_only or not os.access(path, os.W_OK | os.X_OK):
        why = "is on a read-only filesystem" if read_only else "is not writable by this user"
        raise _refuse(fault, "path", f"{shown}{where} {why}", "give a writable directory")
    return path


# --- what each fault will hold, decided before anything is injected


def plan_cpu(fault: FaultSpec) -> dict[str, Any]:
    allowed = sorted(os.sched_getaffinity(0))
    cores = fault.params.get("cores") or len(allowed)
    if cores > len(allowed):
        raise _refuse(fault, "cores", f"{cores} cores asked for, but this machine lets chaos "
                      f"use {len(allowed)}", f"use at most cores: {len(allowed)}")
    pins = allowed[:cores] if fault.params.get("pin") else [None] * cores
    return {"load": fault.params["load"], "ramp": fault.params.get("ramp") or 0.0, "cores": pins}


def plan_memory(fault: FaultSpec) -> dict[str, Any]:
    info = meminfo()
    total, available = info["MemTotal"], info["MemAvailable"]
    amount = fault.params["amount"]
    base = total if fault.params["of"] == "total" else available
    wanted = amount["bytes"] if "bytes" in amount else int(amount["fraction"] * base)
    if wanted > total:
        raise _refuse(fault, "amount", f"{_fmt(wanted)} is more than this machine's physical "
                      f"RAM ({_fmt(total)})", "ask for less, e.g. a percentage: amount: 20%")
    size = wanted if fault.params["mode"] == "allocate" else wanted - (total - available)
    if size <= 0:
        raise _refuse(fault, "amount", f"{_fmt(total - available)} is in use already, more "
                      f"than the {_fmt(wanted)} to fill to", "raise amount, or use mode: allocate")
    left = available - size
    if left < OOM_MARGIN * total and not fault.params.get("force"):
        raise _refuse(fault, "amount", f"holding {_fmt(size)} would leave {_fmt(left)} of "
                      f"{_fmt(total)} available: the kernel's OOM killer could kill other "
                      "processes", "ask for less, or set force: true if that is the point")
    return {"bytes": size, "ramp": fault.params.get("ramp") or 0.0}


def plan_disk_fill(fault: FaultSpec, root: str = "", where: str = "") -> dict[str, Any]:
    path = _directory(fault, root, where)
    given = [k for k in ("size", "percent", "reserve") if fault.params.get(k) is not None]
    if len(given) != 1:
        raise _refuse(fault, "size", "give exactly one of size, percent or reserve"
                      + (f" (found {', '.join(given)})" if given else ""))
    st = os.statvfs(path)
    avail, used = st.f_bavail * st.f_frsize, (st.f_blocks - st.f_bfree) * st.f_frsize
    key, value = given[0], fault.params[given[0]]
    size = {"size": value, "reserve": avail - value,
            "percent": int(value * (used + avail)) - used}[key]
    shown = f"{path.removeprefix(root)}{where}"
    if size <= 0:
        raise _refuse(fault, key, f"{shown} has only {_fmt(avail)} free already: nothing to "
                      "fill", "ask for a fuller disk, or a smaller reserve")
    if size > avail:
        raise _refuse(fault, key, f"{shown} has only {_fmt(avail)} free, less than "
                      f"{_fmt(size)}", "use reserve: 0 to fill what is there")
    name = os.path.join(path, f"chaos-fill-{secrets.token_hex(6)}.bin")
    return {"path": path, "file": name, "bytes": size}


def plan_io(fault: FaultSpec) -> dict[str, Any]:
    path = _directory(fault)
    st = os.statvfs(path)
    need = fault.params["workers"] * fault.params["file_size"]
    margin = min(IO_SPACE_MARGIN, st.f_blocks * st.f_frsize // 10)  # never fill it up
    if need > st.f_bavail * st.f_frsize - margin:
        raise _refuse(fault, "file_size", f"{fault.params['workers']} workers x "
                      f"{_fmt(fault.params['file_size'])} do not fit in {path} "
                      f"({_fmt(st.f_bavail * st.f_frsize)} free)", "use smaller files")
    return {"path": path, "mode": fault.params["mode"], "block": fault.params["block_size"],
            "file_size": fault.params["file_size"], "workers": fault.params["workers"]}


def _fds_per_worker() -> int:
    import resource

    return max(1, resource.getrlimit(resource.RLIMIT_NOFILE)[1] - 64)


def plan_fds(fault: FaultSpec) -> dict[str, Any]:
    with open("/proc/sys/fs/file-nr") as file:
        allocated, _, maximum = (int(x) for x in file.read().split())
    count, free = fault.params["descriptors"], maximum - allocated
    if count > 0.9 * free:
        raise _refuse(fault, "count", f"{count} descriptors would leave fewer than 10% of the "
                      f"{free} this system has free (fs.file-max {maximum})",
                      "hold fewer, so the rest of the system keeps working")
    per = _fds_per_worker()
    return {"counts": [min(per, count - i) for i in range(0, count, per)]}


def plan_threads(fault: FaultSpec) -> dict[str, Any]:
    with open("/proc/sys/kernel/threads-max") as a, open("/proc/sys/kernel/pid_max") as b:
        limit = min(int(a.read()), int(b.read()))
    with open("/proc/loadavg") as file:
        tasks = int(file.read().split()[3].split("/")[1])
    count = fault.params["threads"]
    if count > 0.9 * (limit - tasks):
        raise _refuse(fault, "count", f"{count} threads would leave fewer than 10% of the "
                      f"{limit - tasks} tasks this system can still start",
                      "hold fewer (a process target's pids.max is the meaningful limit)")
    return {"count": count}


PLANS = {"resource.cpu": plan_cpu, "resource.memory": plan_memory,
         "resource.disk_fill": plan_disk_fill, "resource.io": plan_io, "resource.fds": plan_fds,
         "resource.threads": plan_threads}


def _label(fault_type: str, plan: Mapping[str, Any]) -> str:
    if fault_type == "resource.disk_fill":
        return f"{plan['file']} ({_fmt(plan['bytes'])})"
    if fault_type == "resource.cpu":
        return f"{len(plan['cores'])} core(s) at {plan['load'] * 100:g}%"
    if fault_type == "resource.memory":
        return f"{_fmt(plan['bytes'])} of memory"
    if fault_type == "resource.io":
        return f"{plan['workers']} {plan['mode']} worker(s) in {plan['path']}"
    if fault_type == "resource.fds":
        return f"{sum(plan['counts'])} descriptors"
    return f"{plan['count']} threads"


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


def worker_argvs(fault_type: str, plan: Mapping[str, Any], tag: str, deadline: float,
                 joins: list[str], files: list[str]) -> list[list[str]]:
    if fault_type == "resource.cpu":
        return [_argv(tag, deadline, "cpu", ["--load", str(plan["load"]), "--ramp",
                                             str(plan["ramp"])], joins, core)
                for core in plan["cores"]]
    if fault_type == "resource.memory":
        return [_argv(tag, deadline, "memory", ["--bytes", str(plan["bytes"]), "--ramp",
                                                str(plan["ramp"])], joins)]
    if fault_type == "resource.io":
        return [_argv(tag, deadline, "io", ["--path", path, "--io-mode", plan["mode"],
                                            "--block", str(plan["block"]), "--file-size",
                                            str(plan["file_size"])], joins) for path in files]
    if fault_type == "resource.fds":
        return [_argv(tag, deadline, "fds", ["--count", str(n)], joins) for n in plan["counts"]]
    return [_argv(tag, deadline, "threads", ["--count", str(plan["count"])], joins)]


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


async def revert_resource(spec: Mapping[str, Any]) -> RevertOutcome:
    victims = []
    for worker in spec.get("workers", ()):
        proc = same_process(worker["pid"], worker["create_time"])
        if proc is not None:
            victims.append(proc)
    known = {p.pid for p in victims}
    victims += [p for p in _tagged(str(spec.get("tag"))) if p.pid not in known]
    if spec.get("fault") == "resource.io":
        for proc in victims:
            log.info("resource.io worker %s: %s", proc.pid, throughput(proc))
    killed = [p for p in victims if _kill(p)]
    await _gone(killed)
    for worker in spec.get("workers", ()):  # ours, ended by themselves: reap them
        child = _children.pop(worker["pid"], None)
        if child is not None:
            child.wait(5)
            if child.stdout is not None:
                child.stdout.close()
    removed = 0
    for path in spec.get("files", ()):
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
    fault_types: ClassVar[tuple[str, ...]] = (
        "resource.cpu", "resource.memory", "resource.disk_fill", "resource.io", "resource.fds",
        "resource.threads")

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        plan = PLANS[fault.type](fault)
        host = socket.gethostname()
        key = f"host:{fault.type}:{plan.get('path', '')}"
        return [TargetRef("host", f"host {host}: {_label(fault.type, plan)}",
                          {"host": host, "plan": plan}, lock_key=key)]

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        plan = target.identity["plan"]
        tag = secrets.token_hex(8)
        files = [plan["file"]] if fault.type == "resource.disk_fill" else []
        if fault.type == "resource.io":
            files = [os.path.join(plan["path"], f"chaos-io-{tag}-{i}.bin")
                     for i in range(plan["workers"])]
        return {"adapter": NAME, "fault": fault.type, "tag": tag, "workers": [],
                "files": files}

    def _joins(self, target: TargetRef) -> list[str]:
        return []

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        plan = target.identity["plan"]
        if fault.type == "resource.disk_fill":
            try:
                await asyncio.to_thread(fill, plan["file"], plan["bytes"])
            except OSError as exc:
                raise FaultFailed(f"cannot fill {plan['file']}: {exc.strerror or exc}") from exc
            return spec
        deadline = time.time() + fault.duration + 5.0 + 0.1 * fault.duration
        argvs = worker_argvs(fault.type, plan, spec["tag"], deadline, self._joins(target),
                             spec["files"])
        procs = [_start(argv) for argv in argvs]
        workers = [{"pid": p.pid, "create_time": psutil.Process(p.pid).create_time()}
                   for p in procs]
        refined = {**spec, "workers": workers}
        problems = [why for why in await asyncio.gather(*(_ready(p) for p in procs)) if why]
        if problems:
            await revert_resource(refined)
            if "cgroup" in problems[0]:
                raise PermissionDenied(f"{fault.name}: {problems[0]}",
                                       hint="run as root with the cgroup filesystems writable, "
                                            "or use target: {host: local}")
            raise FaultFailed(f"{fault.name}: a worker could not start: {problems[0]}")
        return refined

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        return await revert_resource(spec)


class ProcessResourceAdapter(HostResourceAdapter):
    """The same workers, placed in a target process's cgroups; reverted by `local.resource`."""

    name = "local.resource.cgroup"
    target_kind = "process"
    fault_types = ("resource.cpu", "resource.memory", "resource.io", "resource.threads")

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        plan = PLANS[fault.type](fault)
        return [TargetRef("process", f"{ref.label}'s cgroup: {_label(fault.type, plan)}",
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
