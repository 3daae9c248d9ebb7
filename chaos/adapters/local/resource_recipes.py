"""The resource faults as data: one recipe per fault type, and the plans the recipes read.

A recipe says what a resource fault holds on this machine: how it is planned (the machine's
cores, RAM, free space and limits are checked before anything starts, so an unsafe fault is
refused with exit 2), how the plan reads for people, which burner workers hold it (or, with
none, the one file it fills), which files the revert removes, and whether its workers may join
a target process's cgroups. The host, process and container resource adapters serve the fault
types of `RECIPES`; adding a resource fault is one `FaultType`, one burner mode and one recipe.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaos.errors import UsageError
from chaos.model.experiment import FaultSpec

FILE_PREFIXES = ("chaos-fill-", "chaos-io-")  # revert removes no file not named like this
OOM_MARGIN = 0.05  # of RAM that must stay available unless `force`
IO_SPACE_MARGIN = 64 << 20  # or a tenth of a small filesystem, left free by IO workers
Plan = Mapping[str, Any]


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



# One burner worker: its mode, its arguments, and the core it is pinned to (cpu only).
Worker = tuple[str, list[str], int | None]


def _cpu_workers(plan: Plan, files: Sequence[str]) -> list[Worker]:
    return [("cpu", ["--load", str(plan["load"]), "--ramp", str(plan["ramp"])], core)
            for core in plan["cores"]]


def _io_workers(plan: Plan, files: Sequence[str]) -> list[Worker]:
    return [("io", ["--path", path, "--io-mode", plan["mode"], "--block", str(plan["block"]),
                    "--file-size", str(plan["file_size"])], None) for path in files]


@dataclass(frozen=True)
class ResourceRecipe:
    """What one resource fault type holds, and how."""

    plan: Callable[[FaultSpec], dict[str, Any]]  # checks the machine; raises UsageError
    label: Callable[[Plan], str]  # the plan for people: "2 core(s) at 80%"
    # the burner workers that hold it; None: no worker, the plan's `file` is filled
    workers: Callable[[Plan, Sequence[str]], list[Worker]] | None
    files: Callable[[Plan, str], list[str]] = lambda plan, tag: []  # (plan, tag): revert removes
    in_cgroup: bool = True  # its workers may join a target process's (or container's) cgroups
    memory: Callable[[Plan], int] | None = None  # the RAM it holds, checked against limits
    report_throughput: bool = False  # the revert logs what its workers achieved


RECIPES: Mapping[str, ResourceRecipe] = {
    "resource.cpu": ResourceRecipe(
        plan_cpu, lambda p: f"{len(p['cores'])} core(s) at {p['load'] * 100:g}%", _cpu_workers),
    "resource.memory": ResourceRecipe(
        plan_memory, lambda p: f"{_fmt(p['bytes'])} of memory",
        lambda p, files: [("memory", ["--bytes", str(p["bytes"]), "--ramp", str(p["ramp"])],
                           None)],
        memory=lambda p: int(p["bytes"])),
    "resource.disk_fill": ResourceRecipe(
        plan_disk_fill, lambda p: f"{p['file']} ({_fmt(p['bytes'])})", None,
        files=lambda plan, tag: [plan["file"]], in_cgroup=False),
    "resource.io": ResourceRecipe(
        plan_io, lambda p: f"{p['workers']} {p['mode']} worker(s) in {p['path']}", _io_workers,
        files=lambda plan, tag: [os.path.join(plan["path"], f"chaos-io-{tag}-{i}.bin")
                                 for i in range(plan["workers"])],
        report_throughput=True),
    "resource.fds": ResourceRecipe(
        plan_fds, lambda p: f"{sum(p['counts'])} descriptors",
        lambda p, files: [("fds", ["--count", str(n)], None) for n in p["counts"]],
        in_cgroup=False),
    "resource.threads": ResourceRecipe(
        plan_threads, lambda p: f"{p['count']} threads",
        lambda p, files: [("threads", ["--count", str(p["count"])], None)]),
}
HOST_FAULTS = tuple(RECIPES)
CGROUP_FAULTS = tuple(name for name, recipe in RECIPES.items() if recipe.in_cgroup)
FILE_FAULTS = tuple(name for name, recipe in RECIPES.items() if recipe.workers is None)


def recipe(fault: FaultSpec) -> ResourceRecipe:
    return RECIPES[fault.type]


def plan_of(fault: FaultSpec) -> dict[str, Any]:
    return recipe(fault).plan(fault)


def label_of(fault: FaultSpec, plan: Plan) -> str:
    return recipe(fault).label(plan)
