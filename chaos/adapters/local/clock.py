"""The clock adapter: `time.skew` on a declared service, through libfaketime.

A service that a time.skew fault targets is started with libfaketime preloaded and
FAKETIME_TIMESTAMP_FILE naming an offset file next to the journal, holding `+0`. The fault
writes its offset there (libfaketime re-reads it on every clock call: FAKETIME_NO_CACHE) and the
revert writes `+0` back, atomically (rename), so the watchdog or `chaos recover` can restore the
clock from the revert spec alone. Before injecting, the adapter checks in /proc that the running
service really has libfaketime mapped and reads that file: a static binary (or anything that
ignored LD_PRELOAD) is refused, as are processes chaos did not start.

The monotonic clocks move with the offset too: libfaketime 0.9.10 (Debian 12) can leave them
alone (FAKETIME_DONT_FAKE_MONOTONIC) only by breaking absolute clock_nanosleep, which is how
Python's time.sleep waits (EINVAL).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import psutil

from chaos.adapters.base import Adapter, RevertOutcome, RevertSpec, Scope, TargetRef
from chaos.adapters.local.process import same_process, target_ref
from chaos.errors import FaultFailed, TargetNotFound
from chaos.faults.clock import offset_seconds
from chaos.model.experiment import FaultSpec

NAME = "local.clock"
LIBRARY_GLOBS = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
                 "/usr/local/lib/faketime/libfaketime.so.1")
NO_OFFSET = "+0"


def libfaketime() -> str | None:
    return next((path for pattern in LIBRARY_GLOBS for path in sorted(glob.glob(pattern))), None)


def skewed_services(faults: Iterable[FaultSpec]) -> frozenset[str]:
    """The declared services some time.skew fault targets: they start under libfaketime."""
    return frozenset(str(f.target.selector["name"]) for f in faults
                     if f.type in ClockAdapter.fault_types and f.target.kind == "service")


def faketime_env(offset_file: Path) -> dict[str, str]:
    """The environment that starts a service under libfaketime with no offset yet."""
    library = libfaketime()
    if library is None:
        raise FileNotFoundError("libfaketime is not installed (Debian: apt-get install "
                                "faketime); time.skew needs it")
    write_offset(offset_file, NO_OFFSET)
    preload = " ".join(p for p in (library, os.environ.get("LD_PRELOAD", "")) if p)
    return {"LD_PRELOAD": preload, "FAKETIME_TIMESTAMP_FILE": str(offset_file.resolve()),
            "FAKETIME_NO_CACHE": "1"}


def write_offset(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)  # libfaketime reads either the old offset or the new one, never half


def _offset_file(pid: int) -> Path:
    """The offset file a running service reads, checked in /proc (TargetNotFound if none)."""
    try:
        proc = psutil.Process(pid)
        env = proc.environ()
        mapped = any("libfaketime" in m.path for m in proc.memory_maps(grouped=True))
    except psutil.Error as exc:
        raise TargetNotFound(f"cannot inspect pid {pid}: {exc}") from None
    path = env.get("FAKETIME_TIMESTAMP_FILE")
    if not path:
        raise TargetNotFound(f"pid {pid} was not started under libfaketime by chaos")
    if not mapped:
        raise TargetNotFound(f"libfaketime is not loaded in pid {pid} ({proc.name()}): a static "
                             "binary, or a program that ignores LD_PRELOAD, cannot have its "
                             "clock skewed")
    return Path(path)


@dataclass(frozen=True)
class ClockSpec(RevertSpec):
    """The service's offset file, and its process (pid + create time): a service that
    restarted since reads a fresh file, so its old skew is gone."""

    file: str = ""
    pid: int | None = None
    create_time: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.header(), "file": self.file, "pid": self.pid,
                "create_time": self.create_time}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        cls.check_version(data)
        pid, created = data.get("pid"), data.get("create_time")
        return cls(str(data["adapter"]), str(data["file"]),
                   int(pid) if pid is not None else None,
                   float(created) if created is not None else None)


class ClockAdapter(Adapter):
    name = NAME
    target_kind = "service"
    fault_types = ("time.skew",)

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        service = str(fault.target.selector["name"])
        pid = scope.service_pid(service)
        if pid is None:
            raise TargetNotFound(f"{fault.name}: service {service!r} is not running")
        try:
            ref = target_ref(psutil.Process(pid), "service", {"service": service})
            offset_file = _offset_file(pid)
        except psutil.NoSuchProcess:
            raise TargetNotFound(f"{fault.name}: service {service!r} exited") from None
        except TargetNotFound as exc:
            raise TargetNotFound(f"{fault.name}: service {service!r}: {exc.args[0]}",
                                 hint="time.skew works on services this experiment declares "
                                      "and chaos starts, running a dynamically linked "
                                      "program") from None
        return [TargetRef(kind="service", label=f"service {service} (pid {pid}) clock",
                          identity={**ref.identity, "offset_file": str(offset_file)},
                          lock_key=f"clock:{offset_file}", pids=ref.pids)]

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        return ClockSpec(NAME, str(target.identity["offset_file"]), target.identity.get("pid"),
                         target.identity.get("create_time")).to_json()

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        seconds, typed = offset_seconds(str(fault.params["offset"])), ClockSpec.from_json(spec)
        try:
            write_offset(Path(typed.file), f"{seconds:+d}")
        except OSError as exc:
            raise FaultFailed(f"cannot write the clock offset file {typed.file}: "
                              f"{exc.strerror or exc}") from exc
        return typed.to_json()

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        typed = ClockSpec.from_json(spec)
        path = Path(typed.file)
        if not path.exists():
            return "gone"
        write_offset(path, NO_OFFSET)
        pid, created = typed.pid, typed.create_time
        alive = pid is not None and created is not None and same_process(pid, created)
        return "reverted" if alive else "gone"
