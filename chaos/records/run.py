"""`RunRecord`: the whole journal of one run, as the runner writes it and every reader reads it.

`RunRecord.from_json(doc, origin)` refuses what is not a chaos journal, or one damaged where
a reader would trip over it, with a message naming the file and the field; without an origin it
reads what is there (a hand-made journal in a test holds only the fields it is about).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos.records.experiment import ExperimentSummary
from chaos.records.journal import (Capacity, CheckVerdict, Event, FineSeries, Injection, Phase,
                                   SeriesPoint)
from chaos.records.layout import (NUMBER, Damaged, JsonObject, Record, items, obj,
                                  shape, typed)
from chaos.records.vocabulary import SCHEMA


@dataclass(frozen=True)
class Recovery(Record):
    seconds: float | None = None  # last revert -> every check passing again
    within: float | None = None  # the `recover_within` setting
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_json(cls, data: Any, where: str) -> Recovery:
        data = obj(data, where)
        return cls(typed(data, "seconds", NUMBER, where), typed(data, "within", NUMBER, where),
                   **shape(cls, data))


@dataclass(frozen=True)
class Detection(Record):
    seconds: float | None = None  # first injection -> first failing `during` check
    alerts: tuple[JsonObject, ...] = ()  # one per detection.expect/forbid item
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_json(cls, data: Any, where: str) -> Detection:
        data = obj(data, where)
        return cls(typed(data, "seconds", NUMBER, where),
                   items(data.get("alerts"), f"{where}.alerts", obj), **shape(cls, data))


@dataclass(frozen=True)
class Tool(Record):
    name: str | None = None
    version: str | None = None
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_json(cls, data: Any, where: str) -> Tool:
        data = obj(data, where)
        return cls(typed(data, "name", str, where), typed(data, "version", str, where),
                   **shape(cls, data))


@dataclass(frozen=True)
class RunRecord(Record):
    schema: str = SCHEMA
    run: str | None = None
    tool: Tool | None = None
    host: str | None = None
    user: str | None = None
    seed: int | None = None
    experiment: ExperimentSummary = field(default_factory=ExperimentSummary)
    started: float | None = None  # epoch seconds
    finished: float | None = None
    duration: float | None = None
    verdict: str | None = None  # chaos.records.vocabulary.VERDICTS
    exit_code: int | None = None
    reason: str | None = None
    phases: Mapping[str, Phase] = field(default_factory=dict)  # in the order they started
    injections: tuple[Injection, ...] = ()
    recovery: Recovery | None = None
    detection: Detection | None = None
    capacity: Capacity | None = None  # a breaking-point search
    series: tuple[SeriesPoint, ...] = ()
    fine_series: FineSeries | None = None  # a short run's ticks (docs/journal.md)
    events: tuple[Event, ...] = ()
    chaostoolkit: JsonObject | None = None  # a Chaos Toolkit run: its own journal and outcome
    layout: tuple[str, ...] | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    def checks(self) -> list[tuple[str, CheckVerdict]]:
        """Every check verdict with its phase, in phase order."""
        return [(name, c) for name, phase in self.phases.items() for c in phase.checks]

    def phase(self, name: str) -> Phase:
        return self.phases.get(name) or Phase()

    @classmethod
    def error(cls, source: str, exit_code: int, reason: str) -> RunRecord:
        """The record of a file that could not run at all (invalid, refused, or a run that
        left no journal), so reports and JUnit show it as an error rather than a gap."""
        from chaos import __version__

        return cls(run=None, tool=Tool("chaos", __version__),
                   experiment=ExperimentSummary(title=source, source=source,
                                                layout=("title", "source", "faults")),
                   verdict="error", exit_code=exit_code, reason=reason, duration=0.0,
                   layout=ERROR_LAYOUT)

    @classmethod
    def of(cls, journal: RunRecord | Mapping[str, Any]) -> RunRecord:
        """A record, or the record of a journal a caller still holds as its JSON document."""
        return journal if isinstance(journal, RunRecord) else cls.from_json(journal)

    @classmethod
    def from_json(cls, data: Any, origin: str | None = None) -> RunRecord:
        """The record of a journal document; with `origin` (the file), checked as readers need
        it: a ValueError names the file and the damaged field."""
        if origin is not None:
            refuse_damaged(origin, data)
        try:
            return cls._read(obj(data, ""))
        except Damaged as exc:
            raise ValueError(f"{origin or 'the journal'} is a damaged chaos journal: {exc.where} "
                             "missing or of the wrong type") from None

    @classmethod
    def _read(cls, data: Mapping[str, Any]) -> RunRecord:
        tool, recovery, detection = data.get("tool"), data.get("recovery"), data.get("detection")
        phases = obj(data.get("phases") or {}, "phases")
        return cls(
            typed(data, "schema", str, ""), typed(data, "run", str, ""),
            None if tool is None else Tool.from_json(tool, "tool"),
            typed(data, "host", str, ""), typed(data, "user", str, ""),
            typed(data, "seed", int, ""),
            ExperimentSummary.from_json(data.get("experiment") or {}, "experiment"),
            typed(data, "started", NUMBER, ""), typed(data, "finished", NUMBER, ""),
            typed(data, "duration", NUMBER, ""), typed(data, "verdict", str, ""),
            typed(data, "exit_code", int, ""), typed(data, "reason", str, ""),
            {name: Phase.from_json(p, f"phases.{name}") for name, p in phases.items()},
            items(data.get("injections"), "injections", Injection.from_json),
            None if recovery is None else Recovery.from_json(recovery, "recovery"),
            None if detection is None else Detection.from_json(detection, "detection"),
            None if data.get("capacity") is None else Capacity.from_json(data["capacity"],
                                                                         "capacity"),
            items(data.get("series"), "series", SeriesPoint.from_json),
            None if data.get("fine_series") is None else FineSeries.from_json(
                data["fine_series"], "fine_series"),
            items(data.get("events"), "events", Event.from_json),
            typed(data, "chaostoolkit", Mapping, ""), **shape(cls, data))


# what an error journal has always held, in its order (nothing ran: no times, no measurements)
ERROR_LAYOUT = ("schema", "run", "tool", "experiment", "verdict", "exit_code", "reason",
                "duration", "phases", "injections", "series", "events")
# what every reader needs of a journal file before reading anything else
Kind = type | tuple[type, ...]
_REQUIRED: dict[str, Kind] = {"experiment": dict, "verdict": str, "exit_code": int}
_OPTIONAL: dict[str, Kind] = {"phases": dict, "injections": list, "series": list,
                              "fine_series": dict, "events": list, "started": (int, float), "duration": (int, float)}


def refuse_damaged(origin: str, data: Any) -> None:
    """A ValueError saying what is wrong with a file that is no chaos journal (a Chaos Toolkit
    journal, a truncated or hand-edited one) instead of a crash in a renderer."""
    if isinstance(data, dict) and "chaoslib-version" in data:
        raise ValueError(f"{origin} is a Chaos Toolkit journal; chaos reports read chaos "
                         f"journals ({SCHEMA}): `chaos run` also wrote one, as "
                         "RUNS_DIR/RUN_ID/journal.json")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{origin} is not a chaos journal ({SCHEMA})")
    wrong = [key for key, kind in _REQUIRED.items() if not isinstance(data.get(key), kind)]
    wrong += [key for key, kind in _OPTIONAL.items()
              if data.get(key) is not None and not isinstance(data[key], kind)]
    if not wrong:
        wrong = [f"experiment.{key}" for key in ("title", "source")
                 if not isinstance(data["experiment"].get(key), str)]
    if wrong:
        raise ValueError(f"{origin} is a damaged chaos journal: {', '.join(wrong)} missing or "
                         "of the wrong type")
