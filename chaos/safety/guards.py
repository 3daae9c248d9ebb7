"""Guards: refuse plans that would hurt the machine or the runner itself, before anything runs.

Never PID 1, kernel threads, the runner, its watchdog, or their ancestors (freezing your own
shell or terminal is not an experiment); never the runner or watchdog of another live run that
shares the state dir (killing a watchdog takes away the safety net of a run that holds faults);
never more targets than `limits.max_targets`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import psutil

from chaos.adapters.base import TargetRef
from chaos.errors import GuardRefused
from chaos.model.experiment import FaultSpec, Limits
from chaos.safety.ledger_protocol import LedgerStore

KTHREADD = 2


def ancestors(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        proc: psutil.Process | None = psutil.Process(pid)
        while proc is not None and proc.pid not in found:
            found.add(proc.pid)
            proc = proc.parent()
    except psutil.NoSuchProcess:
        pass
    return found


def protected_pids(extra: Iterable[int] = ()) -> dict[int, str]:
    """pid -> why it may not be targeted."""
    protected = {1: "PID 1 (init)", KTHREADD: "the kernel thread daemon"}
    for pid in ancestors(os.getpid()):
        protected.setdefault(pid, "the chaos runner or one of its ancestors (your shell?)")
    for pid in extra:
        for ancestor in ancestors(pid):
            protected.setdefault(ancestor, "the chaos watchdog or one of its ancestors")
    return protected


def _alive(pid: int, create_time: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - create_time) < 0.05 and (
            proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def other_runs(ledger: LedgerStore, run: str = "") -> dict[int, str]:
    """pid -> why: the live runners and watchdogs of the other runs in this state dir.

    Read when a fault starts (not once per run): a run started since is protected too. A pid is
    only protected while it is the same process (pid and create time), so a dead run's reused
    pid is fair game.
    """
    protected: dict[int, str] = {}
    for info in ledger.heads():  # `finished` is not read: only whether the pids are alive
        if info.run == run:
            continue
        if info.pid and _alive(info.pid, info.pid_create_time):
            protected[info.pid] = f"the runner of another chaos run ({info.run})"
        if info.watchdog_pid and _alive(info.watchdog_pid, info.watchdog_create_time):
            protected[info.watchdog_pid] = (
                f"the watchdog of another chaos run ({info.run}), which reverts its faults if "
                "its runner dies")
    return protected


def _is_kernel_thread(pid: int) -> bool:
    try:  # one read of /proc/PID/stat (not a psutil.Process): guards check every target
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2:].split()[1]) == KTHREADD
    except (OSError, ValueError, IndexError):
        return False


def check_targets(fault: FaultSpec, targets: list[TargetRef], limits: Limits,
                  protected: dict[int, str]) -> None:
    if len(targets) > limits.max_targets:
        raise GuardRefused(
            f"{fault.name}: the target selector matches {len(targets)} targets, more than "
            f"limits.max_targets ({limits.max_targets})",
            hint="narrow the selector, set target.count, or raise limits.max_targets",
        )
    for target in targets:
        for pid in target.pids:
            why = protected.get(pid) or ("a kernel thread" if _is_kernel_thread(pid) else None)
            if why:
                raise GuardRefused(f"{fault.name}: refusing to target pid {pid}: it is {why}",
                                   hint="select a different process")
