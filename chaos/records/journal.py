"""The parts of a run's journal as typed records: check verdicts, phases, injections, series
points, events and a breaking-point search; `RunRecord` (chaos.records.run) holds them.

Readers (reports, game days, ctk) read their attributes, never string keys. The JSON shape is
docs/journal.md (`chaos.journal/v1`), and `from_json(doc).to_json() == doc` key for key, in order
(chaos.records.layout). Parts whose fields differ per kind (an event's payload, a revert spec,
a target's identity, a load profile stage) stay JSON objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos.records.layout import (NUMBER, Damaged, JsonObject, Record, items, obj,
                                  shape, text, typed)


# a check's verdict, as chaos.slo.checks.Verdict.as_dict() writes it (a guardrail's evaluation
# has `breached` and no `status`)
CHECK_KEYS = ("check", "status", "value", "measured", "threshold", "window", "events", "source",
              "reason")


@dataclass(frozen=True)
class CheckVerdict(Record):
    """One check's verdict in one phase (a guardrail's evaluation adds `breached`)."""

    check: str | None = None
    status: str | None = None  # chaos.records.vocabulary.Status values
    breached: bool | None = None
    value: float | None = None
    measured: str | None = None
    threshold: float | None = None
    window: float | None = None
    events: int | None = None
    source: str | None = None
    reason: str | None = None
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_json(cls, data: Any, where: str) -> CheckVerdict:
        data = obj(data, where)
        return cls(typed(data, "check", str, where), typed(data, "status", str, where),
                   typed(data, "breached", bool, where), typed(data, "value", NUMBER, where),
                   typed(data, "measured", str, where), typed(data, "threshold", NUMBER, where),
                   typed(data, "window", NUMBER, where), typed(data, "events", int, where),
                   typed(data, "source", str, where), typed(data, "reason", str, where),
                   **shape(cls, data))


@dataclass(frozen=True)
class Phase(Record):
    started: float | None = None  # seconds since the run started
    checks: tuple[CheckVerdict, ...] = ()
    stages: tuple[JsonObject, ...] = ()  # a load profile's stages in this window
    guardrails: tuple[CheckVerdict, ...] = ()
    finished: float | None = None
    passed: bool | None = None
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_json(cls, data: Any, where: str) -> Phase:
        data = obj(data, where)
        return cls(typed(data, "started", NUMBER, where),
                   items(data.get("checks"), f"{where}.checks", CheckVerdict.from_json),
                   items(data.get("stages"), f"{where}.stages", obj),
                   items(data.get("guardrails"), f"{where}.guardrails", CheckVerdict.from_json),
                   typed(data, "finished", NUMBER, where), typed(data, "passed", bool, where),
                   **shape(cls, data))


@dataclass(frozen=True)
class Injection(Record):
    """One fault on one target: when it was injected and reverted, by whom, and how to undo it."""

    id: str | None = None
    fault: str | None = None
    type: str | None = None
    target: str | None = None
    identity: JsonObject | None = None
    injected_at: float | None = None  # seconds since the run started
    reverted_at: float | None = None
    outcome: str | None = None  # pending | injected | reverted | gone | nothing | failed
    reverted_by: str | None = None
    error: str | None = None
    revert_spec: JsonObject | None = None
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_json(cls, data: Any, where: str) -> Injection:
        data = obj(data, where)
        text = {k: typed(data, k, str, where)
                for k in ("id", "fault", "type", "target", "outcome", "reverted_by", "error")}
        return cls(identity=typed(data, "identity", Mapping, where),
                   injected_at=typed(data, "injected_at", NUMBER, where),
                   reverted_at=typed(data, "reverted_at", NUMBER, where),
                   revert_spec=typed(data, "revert_spec", Mapping, where),
                   **shape(cls, data), **text)


@dataclass(frozen=True)
class SeriesPoint(Record):
    """One second of one probe (`p50`, `p95`, `max` of its successes) or of the traffic
    (`probe: traffic`: `p50`, `p95`, `p99` of every request and the generator's `lag_p99`);
    in a `FineSeries`, one tick of `step` seconds (`t` is then the tick's start)."""

    t: float | None = None  # whole seconds in `series`, tenths in `fine_series`
    probe: str | None = None
    requests: int | None = None
    errors: int | None = None
    p50: float | None = None
    p95: float | None = None
    max: float | None = None
    p99: float | None = None
    lag_p99: float | None = None
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    def stat(self, name: str) -> float | None:
        """A latency statistic by its column name (charts pick columns per probe kind)."""
        value = getattr(self, name)
        return None if value is None else float(value)

    @classmethod
    def from_json(cls, data: Any, where: str) -> SeriesPoint:
        data = obj(data, where)
        stats = {k: typed(data, k, NUMBER, where) for k in ("p50", "p95", "max", "p99", "lag_p99")}
        return cls(typed(data, "t", NUMBER, where), typed(data, "probe", str, where),
                   typed(data, "requests", int, where), typed(data, "errors", int, where),
                   **shape(cls, data), **stats)


FINE_STEP = 0.1  # seconds per tick: the traffic generator's own (chaos.slo.traffic)
# runs up to this long keep a fine series: at most 600 ticks a source, the steps a chart draws
# at about a pixel each (chaos.reports.svg.MAX_STEPS); more would only grow the report
FINE_SECONDS = 60.0


@dataclass(frozen=True)
class FineSeries(Record):
    """A short run's series at the generator's and the probes' own resolution (`step`: 0.1 s),
    so a report draws a drop in the tick it happened in; journals of long runs, and of versions
    before it, have none (docs/journal.md, `fine_series`)."""

    step: float | None = None  # seconds per tick
    points: tuple[SeriesPoint, ...] = ()
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_json(cls, data: Any, where: str) -> FineSeries:
        data = obj(data, where)
        return cls(typed(data, "step", NUMBER, where),
                   items(data.get("points"), f"{where}.points", SeriesPoint.from_json),
                   **shape(cls, data))


@dataclass(frozen=True)
class Event(Record):
    """One event of the run's timeline (catalogue: chaos.runner.events); `data` is its payload."""

    name: str
    t: float | None
    ts: float | None
    data: JsonObject
    layout: tuple[str, ...] | None = None  # the keys in file order, when not event, t, ts first

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def to_json(self) -> dict[str, Any]:
        full = {"event": self.name, "t": self.t, "ts": self.ts, **self.data}
        return full if self.layout is None else {k: full[k] for k in self.layout}

    @classmethod
    def from_json(cls, data: Any, where: str) -> Event:
        data = obj(data, where)
        if not isinstance(data.get("event"), str):
            raise Damaged(f"{where}.event")
        keys = tuple(data)
        return cls(data["event"], typed(data, "t", NUMBER, where), typed(data, "ts", NUMBER, where),
                   {k: v for k, v in data.items() if k not in ("event", "t", "ts")},
                   None if keys[:3] == ("event", "t", "ts") else keys)


# --- a breaking-point search (`traffic.profile.breaking_point`): the request rate rises step by
# step until a stop condition holds; `under_fault` is a second search with the faults held, and
# `lost` the share of the sustainable rate the faults cost (docs/journal.md, `capacity`)

@dataclass(frozen=True)
class CapacityStep(Record):
    rate: float | None = None  # requests per second sent in this step
    requests: int | None = None
    errors: int | None = None
    p99: float | None = None  # seconds
    status: str | None = None  # held | broken | invalid
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_json(cls, data: Any, where: str) -> CapacityStep:
        data = obj(data, where)
        return cls(typed(data, "rate", NUMBER, where), typed(data, "requests", int, where),
                   typed(data, "errors", int, where), typed(data, "p99", NUMBER, where),
                   typed(data, "status", str, where), **shape(cls, data))


@dataclass(frozen=True)
class Capacity(Record):
    sustainable_rate: float | None = None  # the highest step where no stop condition held
    broken_at: float | None = None  # the first step where one held
    broken_by: str | None = None  # that stop condition, as written
    invalid: str | None = None  # why the search could not decide
    steps: tuple[CapacityStep, ...] = ()
    faults: tuple[str, ...] = ()  # under_fault: the faults injected during the search
    under_fault: Capacity | None = None  # the second search, faults held
    lost: float | None = None  # the share of the sustainable rate the faults cost
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

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
                   typed(data, "lost", NUMBER, where), **shape(cls, data))
