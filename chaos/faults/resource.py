"""Resource faults: CPU, memory, disk fill, IO, file descriptors and threads, held by workers.

Declared here as data (parameters with units, defaults and docs; the `host` target kind) so that
validation, `chaos faults` and `chaos inject` know them without importing the adapter that
starts the workers (chaos.adapters.local.resource). Checks that need the machine (how much RAM,
is the path writable) happen when the adapter resolves the target, before anything is injected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaos.faults import container, targets
from chaos.faults.registry import FaultRegistry, FaultType
from chaos.model.experiment import Target
from chaos.model.schema import Bool, Duration, Field, Int, Obj, Scalar, Str, Unit, scalar_as
from chaos.units import PERCENT_PATTERN, SIZE_PATTERN, parse_percent, parse_size, shown

def no_traffic_fields(target: Target, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """device and traffic filters select traffic for network faults; resource faults have none."""
    return [*targets.no_pod_traffic(target, params),
            *container.no_container_traffic(target, params)]


HOST = Obj({"name": Str("the machine: `local` (the one chaos runs on)", choices=("local",))},
           "this machine: `target: {host: local}`", shorthand=scalar_as("name"))


class Amount(Scalar):
    """A size (`512MiB`) or a share (`25%`): `{"bytes": N}` or `{"fraction": F}`."""

    def convert(self, value: object) -> Any:
        if isinstance(value, str) and value.strip().endswith("%"):
            return {"fraction": parse_percent(value)}
        try:
            return {"bytes": parse_size(value)}
        except ValueError:
            raise ValueError(f"expected a size like 512MiB or a percentage like 25%, "
                             f"got {shown(value)}") from None

    def describe(self) -> str:
        return "size or percentage (e.g. 512MiB, 25%)"

    def json_schema(self) -> dict[str, Any]:
        text = {"type": "string", "pattern": f"^(?:{SIZE_PATTERN}|{PERCENT_PATTERN})$|\\$\\{{"}
        return self._with_doc({"anyOf": [text, {"type": "integer", "minimum": 0}]})


def _load(doc: str, default: str) -> Unit:
    return Unit(parse_percent, "percentage", "80%", doc, default, min=0.01)


def _size(doc: str, default: Any = None, *, min: float | None = None) -> Unit:
    return Unit(parse_size, "size", "64MiB", doc, default, min=min)


RAMP = Duration("rise linearly from nothing to the full amount over this long", "0s", min=0)

CPU = FaultType(
    name="resource.cpu",
    summary="keep CPU cores busy at a given load (duty cycle on the workers' own CPU time)",
    params=Obj({
        "load": _load("busy share of each loaded core (1% to 100%)", "100%"),
        "cores": Int("number of cores to load (default: all the runner may use)", min=1),
        "pin": Bool("pin each worker to its own core (sched_setaffinity)", False),
        "ramp": RAMP,
    }),
    target_kinds=("host", "process", "pods", "container"),
    check=no_traffic_fields,
)

MEMORY = FaultType(
    name="resource.memory",
    summary="hold memory (pages touched, so it is resident) for the duration",
    params=Obj({
        "amount": Field(Amount("how much: a size, or a percentage of `of`"), required=True),
        "of": Str("what a percentage is of: total RAM or currently available memory", "total",
                  choices=("total", "available")),
        "mode": Str("allocate: hold `amount` more; fill_to: hold what brings the host's used "
                    "memory up to `amount`", "allocate", choices=("allocate", "fill_to")),
        "ramp": RAMP,
        "force": Bool("allow an amount that leaves less than 5% of RAM available (the kernel's "
                      "OOM killer may then kill other processes)", False),
    }),
    target_kinds=("host", "process", "pods", "container"),
    check=no_traffic_fields,
)

DISK_FILL = FaultType(
    name="resource.disk_fill",
    summary="fill a filesystem with one file (fallocate, write fallback); removed on revert",
    params=Obj({
        "path": Field(Str("existing writable directory (in the container, for a container "
                          "target); the file is created in it",
                          min_length=1), required=True),
        "size": _size("write this much"),
        "percent": Unit(parse_percent, "percentage", "90%", "fill until the filesystem is "
                        "this full"),
        "reserve": _size("fill until only this much is free"),
    }),
    target_kinds=("host", "container"),
)

IO = FaultType(
    name="resource.io",
    summary="read/write workers hammering a directory's filesystem",
    params=Obj({
        "path": Field(Str("existing writable directory for the workers' files", min_length=1),
                      required=True),
        "mode": Str("what the workers do", "write", choices=("read", "write", "mixed")),
        "block_size": _size("size of each read or write", "1MiB", min=512),
        "file_size": _size("size of each worker's file", "64MiB", min=4096),
        "workers": Int("number of worker processes", 1, min=1, max=64),
    }),
    target_kinds=("host", "process", "container"),
    check=no_traffic_fields,
)

FDS = FaultType(
    name="resource.fds",
    summary="hold open file descriptors, counted against the system-wide limit (fs.file-max)",
    params=Obj({
        "descriptors": Field(Int("how many to hold open", min=1, max=10_000_000),
                             required=True),
    }),
    target_kinds=("host",),
)

THREADS = FaultType(
    name="resource.threads",
    summary="hold sleeping threads (tasks), against pids.max when placed in a process's cgroup",
    params=Obj({
        "threads": Field(Int("how many to hold", min=1, max=100_000), required=True),
    }),
    target_kinds=("host", "process", "container"),
    check=no_traffic_fields,
)

ALL = (CPU, MEMORY, DISK_FILL, IO, FDS, THREADS)


def register(registry: FaultRegistry) -> None:
    registry.add_target_kind("host", HOST)
    for fault in ALL:
        registry.add(fault)
