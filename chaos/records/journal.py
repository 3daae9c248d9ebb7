"""The journal as typed records: what one run leaves, read by reports, game days and ctk.

The runner builds a `RunRecord` and writes `to_json()`; every reader gets one from `from_json`
and reads attributes, never string keys. The JSON shape is docs/journal.md (`chaos.journal/v1`);
`from_json(doc).to_json() == doc` for every journal chaos writes (runs, error journals, Chaos
Toolkit runs), key order included (chaos.records.layout). Parts whose fields differ per kind
(an event's payload, a revert spec, a target's identity, a capacity search) stay JSON objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos.records.layout import (NUMBER, Damaged, JsonObject, items, layout_of, obj, to_json,
                                  typed)


def _key(name: str) -> Any:
    return field(metadata={"key": name})


# a check's verdict, as chaos.slo.checks.Verdict.as_dict() writes it (a guardrail's evaluation
# has `breached` and no `status`)
CHECK_KEYS = ("check", "status", "value", "measured", "threshold", "window", "events", "source",
              "reason")


@dataclass(frozen=True)
class CheckVerdict:
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

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, data: Any, where: str) -> CheckVerdict:
        data = obj(data, where)
        return cls(typed(data, "check", str, where), typed(data, "status", str, where),
                   typed(data, "breached", bool, where), typed(data, "value", NUMBER, where),
                   typed(data, "measured", str, where), typed(data, "threshold", NUMBER, where),
                   typed(data, "window", NUMBER, where), typed(data, "events", int, where),
                   typed(data, "source", str, where), typed(data, "reason", str, where),
                   layout_of(cls, data, where))


@dataclass(frozen=True)
class Phase:
    started: float | None = None  # seconds since the run started
    checks: tuple[CheckVerdict, ...] = ()
    stages: tuple[JsonObject, ...] = ()  # a load profile's stages in this window
    guardrails: tuple[CheckVerdict, ...] = ()
    finished: float | None = None
    passed: bool | None = None
    layout: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, data: Any, where: str) -> Phase:
        data = obj(data, where)
        return cls(typed(data, "started", NUMBER, where),
                   items(data.get("checks"), f"{where}.checks", CheckVerdict.from_json),
                   items(data.get("stages"), f"{where}.stages", obj),
                   items(data.get("guardrails"), f"{where}.guardrails", CheckVerdict.from_json),
                   typed(data, "finished", NUMBER, where), typed(data, "passed", bool, where),
                   layout_of(cls, data, where))


@dataclass(frozen=True)
class Injection:
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

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, data: Any, where: str) -> Injection:
        data = obj(data, where)
        text = {k: typed(data, k, str, where)
                for k in ("id", "fault", "type", "target", "outcome", "reverted_by", "error")}
        return cls(identity=typed(data, "identity", Mapping, where),
                   injected_at=typed(data, "injected_at", NUMBER, where),
                   reverted_at=typed(data, "reverted_at", NUMBER, where),
                   revert_spec=typed(data, "revert_spec", Mapping, where),
                   layout=layout_of(cls, data, where), **text)


@dataclass(frozen=True)
class SeriesPoint:
    """One second of one probe (`p50`, `p95`, `max` of its successes) or of the traffic
    (`probe: traffic`: `p50`, `p95`, `p99` of every request and the generator's `lag_p99`)."""

    t: int | None = None
    probe: str | None = None
    requests: int | None = None
    errors: int | None = None
    p50: float | None = None
    p95: float | None = None
    max: float | None = None
    p99: float | None = None
    lag_p99: float | None = None
    layout: tuple[str, ...] | None = None

    def stat(self, name: str) -> float | None:
        """A latency statistic by its column name (charts pick columns per probe kind)."""
        value = getattr(self, name)
        return None if value is None else float(value)

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, data: Any, where: str) -> SeriesPoint:
        data = obj(data, where)
        stats = {k: typed(data, k, NUMBER, where) for k in ("p50", "p95", "max", "p99", "lag_p99")}
        return cls(typed(data, "t", NUMBER, where), typed(data, "probe", str, where),
                   typed(data, "requests", int, where), typed(data, "errors", int, where),
                   layout=layout_of(cls, data, where), **stats)


@dataclass(frozen=True)
class Event:
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
