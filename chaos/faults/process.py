"""Process and service faults: kill, suspend, restart."""

from __future__ import annotations

import signal

from chaos.faults.registry import FaultRegistry, FaultType
from chaos.model.schema import Bool, Obj, Str

SIGNALS = tuple(sorted(s.name[3:] for s in signal.Signals if not s.name.startswith("SIG_")))
# An instant fault must not leave a process stopped: freezing is process.suspend's job, which
# holds it for a duration and resumes it.
STOPPING = frozenset({"STOP", "TSTP", "TTIN", "TTOU"})
KILL_SIGNALS = tuple(s for s in SIGNALS if s not in STOPPING)

KILL = FaultType(
    name="process.kill",
    summary="send a signal (KILL by default) to the selected processes",
    params=Obj({
        "signal": Str("signal name without SIG (not STOP: use process.suspend)", "KILL",
                      choices=KILL_SIGNALS),
    }),
    target_kinds=("process", "service"),
    instant=True,
)

SUSPEND = FaultType(
    name="process.suspend",
    summary="freeze the selected processes (SIGSTOP) for the duration, then resume (SIGCONT)",
    params=Obj({
        "children": Bool("also freeze the processes' descendants", False),
    }),
    target_kinds=("process", "service"),
)

RESTART = FaultType(
    name="service.restart",
    summary="stop a declared service and start it again, waiting until it is ready",
    params=Obj({
        "signal": Str("signal that stops it (default: the service's stop signal)",
                      choices=KILL_SIGNALS),
    }),
    target_kinds=("service",),
    instant=True,
)


def register(registry: FaultRegistry) -> None:
    for fault in (KILL, SUSPEND, RESTART):
        registry.add(fault)
