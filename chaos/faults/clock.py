"""Clock faults: a service whose wall clock jumps, to prove token expiry, caches, schedulers and
certificate checks survive it.

`time.skew` applies to a service declared in the experiment only: chaos starts it under
libfaketime (Debian `faketime`) reading its offset from a file, so the offset can change and
end while the service runs. Processes chaos did not start cannot be skewed (that would need
patching their vDSO); neither can static binaries, which ignore LD_PRELOAD.
"""

from __future__ import annotations

from chaos.faults.registry import FaultRegistry, FaultType
from chaos.model.schema import Field, Obj, Str

OFFSET = r"[+-][0-9]+(s|m|h|d)"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def offset_seconds(text: str) -> int:
    """`+2h` -> 7200, `-30d` -> -2592000."""
    return int(text[:-1]) * UNITS[text[-1]]


SKEW = FaultType(
    name="time.skew",
    summary="move a declared service's wall clock by an offset (libfaketime) while it runs",
    params=Obj({
        "offset": Field(Str("signed whole offset: +2h, -30d, +90s, -15m (libfaketime moves "
                            "the monotonic clocks by it too; sleeps keep their length)", pattern=OFFSET),
                        required=True),
    }),
    target_kinds=("service",),
)


def register(registry: FaultRegistry) -> None:
    registry.add(SKEW)
