"""The experiment as a journal records it: enough to say what ran, after the file changed.

Native runs record the whole summary; a Chaos Toolkit run the fields it has (`format:
chaostoolkit`); an error journal only the file (it could not run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos.records.layout import (NUMBER, Damaged, JsonObject, Record, items, obj,
                                  shape, text, typed)


@dataclass(frozen=True)
class FaultSummary(Record):
    name: str | None = None
    type: str | None = None
    target: str | None = None
    params: JsonObject | None = field(default=None, metadata={"key": "with"})
    start: float | None = None
    duration: float | None = None
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_json(cls, data: Any, where: str) -> FaultSummary:
        data = obj(data, where)
        return cls(typed(data, "name", str, where), typed(data, "type", str, where),
                   typed(data, "target", str, where), typed(data, "with", Mapping, where),
                   typed(data, "start", NUMBER, where), typed(data, "duration", NUMBER, where),
                   **shape(cls, data))


@dataclass(frozen=True)
class ServiceSummary(Record):
    name: str | None = None
    run: tuple[str, ...] = ()  # its command line, secrets masked
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_json(cls, data: Any, where: str) -> ServiceSummary:
        data = obj(data, where)
        return cls(typed(data, "name", str, where),
                   items(data.get("run"), f"{where}.run", text), **shape(cls, data))


@dataclass(frozen=True)
class SloSummary(Record):
    objective: float | None = None  # e.g. 0.995
    period: float | None = None  # seconds
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_json(cls, data: Any, where: str) -> SloSummary:
        data = obj(data, where)
        return cls(typed(data, "objective", NUMBER, where), typed(data, "period", NUMBER, where),
                   **shape(cls, data))


@dataclass(frozen=True)
class ExperimentSummary(Record):
    """What was run: native, a Chaos Toolkit file (`format: chaostoolkit`), or only a file
    name (an error journal: the file could not run)."""

    title: str | None = None
    source: str | None = None
    sha256: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    variables: JsonObject | None = None
    services: tuple[ServiceSummary, ...] = ()
    faults: tuple[FaultSummary, ...] = ()
    checks: tuple[str, ...] = ()
    slo: SloSummary | None = None
    format: str | None = None
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_json(cls, data: Any, where: str) -> ExperimentSummary:
        data = obj(data, where)
        slo = data.get("slo")
        return cls(typed(data, "title", str, where), typed(data, "source", str, where),
                   typed(data, "sha256", str, where), typed(data, "description", str, where),
                   items(data.get("tags"), f"{where}.tags", text),
                   typed(data, "variables", Mapping, where),
                   items(data.get("services"), f"{where}.services", ServiceSummary.from_json),
                   items(data.get("faults"), f"{where}.faults", FaultSummary.from_json),
                   items(data.get("checks"), f"{where}.checks", text),
                   None if slo is None else SloSummary.from_json(slo, f"{where}.slo"),
                   typed(data, "format", str, where), **shape(cls, data))
