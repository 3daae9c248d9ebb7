"""Local processes: select them with psutil, kill or freeze them, thaw them from plain data.

A process's identity is its pid *and* its create time, so a revert never signals a stranger that
reused the pid. psutil calls are quick /proc reads; the few that may block on a busy machine run
in a thread.
"""

from __future__ import annotations

import asyncio
import math
import os
import pwd
import random
import re
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import psutil

from chaos.adapters.base import Adapter, RevertOutcome, RevertSpec, Scope, TargetRef
from chaos.errors import FaultFailed, PermissionDenied, TargetNotFound
from chaos.model.experiment import FaultSpec
from chaos.units import clip

NAME = "local.process"
CREATE_TIME_TOLERANCE = 0.05


SCANNED = ["name", "cmdline", "status", "create_time"]  # read once per process by a selector


def identity(proc: psutil.Process, scanned: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """pid + create time (+ name and command line for people); `scanned`: what a selector's
    scan just read (SCANNED), so a thousand targets are not read twice."""
    if scanned is not None and scanned.get("create_time") is not None:
        return {"pid": proc.pid, "create_time": scanned["create_time"],
                "name": scanned.get("name") or "",
                "cmdline": " ".join(" ".join(scanned.get("cmdline") or []).split())[:200]}
    with proc.oneshot():
        try:
            cmdline = proc.cmdline()
        except (psutil.AccessDenied, psutil.ZombieProcess):
            cmdline = []
        return {"pid": proc.pid, "create_time": proc.create_time(), "name": proc.name(),
                "cmdline": " ".join(" ".join(cmdline).split())[:200]}  # one line, bounded


def target_ref(proc: psutil.Process, kind: str = "process",
               extra: Mapping[str, Any] | None = None,
               scanned: Mapping[str, Any] | None = None) -> TargetRef:
    ident = {**identity(proc, scanned), **(extra or {})}
    label = f"pid {ident['pid']} ({command_label(ident['cmdline']) or ident['name']})"
    return TargetRef(kind=kind, label=label, identity=ident,
                     lock_key=f"process:{ident['pid']}:{ident['create_time']:.2f}",
                     pids=(proc.pid,))


def command_label(cmdline: str, limit: int = 60) -> str:
    """The command line as a label: the program by its base name (`python3`, not the venv's
    path), then whole words up to `limit` characters."""
    program, _, rest = cmdline.partition(" ")
    return clip(f"{os.path.basename(program) or program} {rest}".strip(), limit)


def same_process(pid: int, create_time: float) -> psutil.Process | None:
    """The live process with this identity, or None if it is gone (or the pid was reused)."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > CREATE_TIME_TOLERANCE:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.NoSuchProcess:
        return None


def _matches(info: Mapping[str, Any], sel: Mapping[str, Any], pattern: re.Pattern[str] | None,
             uid: int | None) -> bool:
    """Against what the scan read (process_iter's `info`: None where access was denied)."""
    cmd = info.get("cmdline")
    if cmd is None and (sel.get("name") is not None or pattern is not None):
        return False  # not ours to read: not ours to hit
    cmd = cmd or []
    if sel.get("name") is not None:
        names = {info.get("name")}
        if cmd:
            names.add(os.path.basename(cmd[0]))
        if sel["name"] not in names:
            return False
    if pattern is not None and not pattern.search(" ".join(cmd)):
        return False
    if uid is not None and (info.get("uids") is None or info["uids"].real != uid):
        return False
    return info.get("status") not in (None, psutil.STATUS_ZOMBIE)


def _pid_from_file(path: str) -> int:
    try:
        text = Path(path).read_text().strip()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError) as exc:
        raise TargetNotFound(f"cannot read a pid from pidfile {path}: {exc}") from None


def family(pid: int) -> list[psutil.Process]:
    """A process and every process below it (a service's supervisor and its workers)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def find_processes(sel: Mapping[str, Any], within: int | None = None) -> list[psutil.Process]:
    """All live processes matching every given selector field, sorted by pid; with `within`,
    only that process and the processes below it."""
    pattern = None
    if sel.get("cmdline") is not None:
        try:
            pattern = re.compile(sel["cmdline"])
        except re.error as exc:
            raise TargetNotFound(f"cmdline is not a valid regular expression: {exc}") from None
    uid = None
    if sel.get("user") is not None:
        try:
            uid = pwd.getpwnam(sel["user"]).pw_uid
        except KeyError:
            raise TargetNotFound(f"no user named {sel['user']!r}") from None
    pid = sel.get("pid")
    if sel.get("pidfile") is not None:
        pid = _pid_from_file(sel["pidfile"])
    me = os.getpid()
    inside = None if within is None else {p.pid for p in family(within)}
    attrs = SCANNED + (["uids"] if uid is not None else [])
    if pid is not None:
        try:
            one = psutil.Process(pid)
            one.info = one.as_dict(attrs)
        except psutil.NoSuchProcess:
            return []
        candidates = [one]
    else:  # one pass reads every process once (oneshot); `info` keeps it for identity()
        candidates = [p for p in psutil.process_iter(attrs) if p.pid != me]
    if inside is not None:
        candidates = [p for p in candidates if p.pid in inside]
    found = [p for p in candidates if _matches(p.info, sel, pattern, uid)]
    return sorted(found, key=lambda p: p.pid)


def choose(found: list[Any], count: int | None, percent: float | None, seed: int) -> list[Any]:
    """A reproducible random subset (the seed is recorded in the journal)."""
    if count is None and percent is None:
        return found
    n = count if count is not None else math.ceil(len(found) * (percent or 0.0))
    n = min(max(n, 0), len(found))
    return sorted(random.Random(seed).sample(found, n), key=lambda p: getattr(p, "pid", 0))


def describe_selector(sel: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sel.items() if v is not None) or "(empty)"


@dataclass(frozen=True)
class ProcessSpec(RevertSpec):
    """A process fault's revert spec: the processes to resume (pid + create time), or nothing
    to undo (a signal, a restart)."""

    action: Literal["none", "resume"] = "none"
    processes: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        if self.action == "none":
            return {**self.header(), "action": "none"}
        return {**self.header(), "action": self.action,
                "processes": [{"pid": p["pid"], "create_time": p["create_time"]}
                              for p in self.processes]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        cls.check_version(data)
        action: Literal["none", "resume"] = "resume" if data.get("action") == "resume" else "none"
        return cls(str(data["adapter"]), action, tuple(data.get("processes", ())))


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROCFS = os.path.exists("/proc/self/stat")  # Linux; elsewhere psutil's own way


def _still_there(pid: int, create_time: float) -> bool:
    """same_process() without building a psutil.Process: one read of /proc/PID/stat (and of
    the boot time, as psutil computes create times), so a thousand targets take milliseconds."""
    if not PROCFS:
        return same_process(pid, create_time) is not None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):  # a zombie cannot be stopped or resumed: it is gone
        return False
    started = int(fields[19]) / CLOCK_TICKS + psutil.boot_time()
    return abs(started - create_time) <= CREATE_TIME_TOLERANCE


def send(pid: int, create_time: float, sig: signal.Signals) -> bool:
    """Signal a process if it is still the same one; False if it is gone."""
    if not _still_there(pid, create_time):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError as exc:
        raise PermissionDenied(f"not allowed to send SIG{sig.name[3:]} to pid {pid}") from exc
    return True


def descendants(pid: int, create_time: float) -> list[dict[str, Any]]:
    proc = same_process(pid, create_time)
    if proc is None:
        return []
    try:
        return [identity(c) for c in proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


async def _kill(fault: FaultSpec, target: TargetRef, spec: ProcessSpec, scope: Scope) -> None:
    ident = target.identity
    sig = signal.Signals["SIG" + fault.params.get("signal", "KILL")]
    if not send(ident["pid"], ident["create_time"], sig):
        raise FaultFailed(f"{target.label} exited before it could be signalled")


async def _suspend(fault: FaultSpec, target: TargetRef, spec: ProcessSpec,
                   scope: Scope) -> None:
    stopped = 0
    for proc in spec.processes:
        if send(proc["pid"], proc["create_time"], signal.SIGSTOP):
            stopped += 1
    if not stopped:
        raise FaultFailed(f"{target.label} exited before it could be suspended")


def _snapshot(fault: FaultSpec, target: TargetRef) -> ProcessSpec:
    procs = [dict(target.identity)]
    if fault.params.get("children"):
        procs += descendants(target.identity["pid"], target.identity["create_time"])
    return ProcessSpec(NAME, "resume", tuple(procs))


@dataclass(frozen=True)
class ProcessRecipe:
    """What a process fault does: the revert spec it writes first, then the act itself."""

    prepare: Callable[[FaultSpec, TargetRef], ProcessSpec]
    act: Callable[[FaultSpec, TargetRef, ProcessSpec, Scope], Awaitable[None]]


RECIPES: Mapping[str, ProcessRecipe] = {
    "process.kill": ProcessRecipe(lambda fault, target: ProcessSpec(NAME), _kill),
    "process.suspend": ProcessRecipe(_snapshot, _suspend),
}


async def resolve_processes(fault: FaultSpec, scope: Scope,
                            extra: Mapping[str, Any] | None = None) -> list[TargetRef]:
    """The processes a fault's selector picks now (count/percent by the run's seed)."""
    sel = fault.target.selector
    within = None
    if sel.get("service") is not None:  # a declared service's processes, as they are now
        within = scope.service_pid(str(sel["service"]))
        if within is None:
            raise TargetNotFound(f"{fault.name}: service {sel['service']!r} is not running, so "
                                 f"no process of it matches {describe_selector(sel)}")
    found = await asyncio.to_thread(find_processes, sel, within)
    if not found:
        raise TargetNotFound(f"{fault.name}: no running process matches "
                             f"{describe_selector(sel)}")
    chosen = choose(found, fault.target.count, fault.target.percent, scope.seed + fault.index)
    refs = []
    for proc in chosen:
        try:
            refs.append(target_ref(proc, extra=extra, scanned=getattr(proc, "info", None)))
        except psutil.NoSuchProcess:
            continue  # exited while we looked
    if not refs:
        raise TargetNotFound(f"{fault.name}: every process matching {describe_selector(sel)} "
                             "exited while it was being selected")
    return refs


class ProcessAdapter(Adapter):
    name = NAME
    target_kind = "process"
    fault_types = tuple(RECIPES)
    recipes: ClassVar[Mapping[str, ProcessRecipe]] = RECIPES

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        return await resolve_processes(fault, scope)

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        return self.recipes[fault.type].prepare(fault, target).to_json()

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        typed = ProcessSpec.from_json(spec)
        await self.recipes[fault.type].act(fault, target, typed, scope)
        return typed.to_json()

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        typed = ProcessSpec.from_json(spec)
        if typed.action == "none":
            return "nothing"
        resumed = 0
        for proc in typed.processes:
            if send(proc["pid"], proc["create_time"], signal.SIGCONT):
                resumed += 1
        return "reverted" if resumed else "gone"
