"""A breaking-point search as the journal records it (`traffic.profile.breaking_point`).

The search raises the request rate step by step until a stop condition holds; `under_fault`
runs a second search with the faults held, and `lost` is the share of the sustainable rate the
faults cost. docs/journal.md, `capacity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chaos.records.layout import NUMBER, items, layout_of, obj, text, to_json, typed


@dataclass(frozen=True)
class CapacityStep:
    rate: float | None = None  # requests per second sent in this step
    requests: int | None = None
    errors: int | None = None
    p99: float | None = None  # seconds
    status: str | None = None  # held | broken | invalid
    layout: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, data: Any, where: str) -> CapacityStep:
        data = obj(data, where)
        return cls(typed(data, "rate", NUMBER, where), typed(data, "requests", int, where),
                   typed(data, "errors", int, where), typed(data, "p99", NUMBER, where),
                   typed(data, "status", str, where), layout_of(cls, data, where))


@dataclass(frozen=True)
class Capacity:
    sustainable_rate: float | None = None  # the highest step where no stop condition held
    broken_at: float | None = None  # the first step where one held
    broken_by: str | None = None  # that stop condition, as written
    invalid: str | None = None  # why the search could not decide
    steps: tuple[CapacityStep, ...] = ()
    faults: tuple[str, ...] = ()  # under_fault: the faults injected during the search
    under_fault: Capacity | None = None  # the second search, faults held
    lost: float | None = None  # the share of the sustainable rate the faults cost
    layout: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, data: Any, where: str) -> Capacity:
        data = obj(data, where)
        faulted = data.get("under_fault")
        return cls(typed(data, "sustainable_rate", NUMBER, where),
                   typed(data, "broken_at", NUMBER, where), typed(data, "broken_by", str, where),
                   typed(data, "invalid", str, where),
                   items(data.get("steps"), f"{where}.steps", CapacityStep.from_json),
                   items(data.get("faults"), f"{where}.faults", text),
                   None if faulted is None else cls.from_json(faulted, f"{where}.under_fault"),
                   typed(data, "lost", NUMBER, where), layout_of(cls, data, where))
