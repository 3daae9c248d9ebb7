"""Game-day files -> frozen GameDay, with the experiment files' located-error machinery.

A game day names experiments to run together (in order, or in parallel groups), who owns the
day, when it runs (cron + IANA time zone), when to stop early, which reports to write and whom
to tell. It is declared with chaos.model.schema like an experiment, so a mistake is reported as
`file:line:col: field.path: what was expected`, all problems at once, exit 2. Experiment paths
are relative to the game-day file; the experiments themselves are validated by the game-day
runner (chaos.gameday), which has the fault catalogue this layer cannot see.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from chaos.errors import ExperimentInvalid, Location, Problem
from chaos.model import source
from chaos.model.experiment import Webhook, frozen
from chaos.model.schema import (
    INVALID,
    Context,
    Field,
    Int,
    List,
    Map,
    Obj,
    Schema,
    Str,
    kind_of,
)
from chaos.model.sections import VAR_NAME, VarDefault, build_webhooks, webhooks

STOP_ON = ("never", "first_failure", "first_abort")
# the built-in formats that write a file, the default of `reports.formats`; the formats a file
# may name come from the reporter registry (the game-day layer passes them in: it sits above
# chaos.reports, this model below it)
FORMATS = ("html", "markdown", "junit", "postmortem")
EVENTS = ("started", "finished", "aborted", "missed")


@dataclass(frozen=True)
class ExperimentRef:
    file: str  # as written in the game-day file
    path: str  # resolved against the game-day file's directory
    vars: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    weight: int = 1  # in the resilience score (docs/reports.md)
    location: Location | None = None

    @property
    def shown(self) -> str:
        """The file as the person at the terminal can use it: relative to the working
        directory when it is inside it, else absolute (not as written in the game day)."""
        relative = os.path.relpath(self.path)
        return self.path if relative.startswith("..") else relative


@dataclass(frozen=True)
class Step:
    """One experiment, or a parallel group: the next step starts when every one has ended."""

    experiments: tuple[ExperimentRef, ...]
    parallel: bool = False


@dataclass(frozen=True)
class Schedule:
    cron: str  # five fields: minute hour day-of-month month day-of-week
    timezone: str = "UTC"




@dataclass(frozen=True)
class GameDay:
    title: str
    source: str  # the path as given
    source_hash: str
    steps: tuple[Step, ...]
    description: str = ""
    owners: tuple[str, ...] = ()
    schedule: Schedule | None = None
    vars: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    uses: frozenset[str] = frozenset()  # variables the file refers to (${name}) or declares
    stop_on: str = "first_abort"
    reports_dir: str | None = None  # relative to the current directory
    formats: tuple[str, ...] = FORMATS
    notify: tuple[Webhook, ...] = ()

    @property
    def experiments(self) -> tuple[ExperimentRef, ...]:
        return tuple(ref for step in self.steps for ref in step.experiments)


class Cron(Str):
    """Five cron fields, checked by croniter (the schedule's library); no seconds field, so the
    same expression works as a Kubernetes CronJob schedule."""

    def convert(self, value: object) -> str:
        text = super().convert(value)
        from croniter import croniter  # only when a file has a schedule

        if len(text.split()) != 5 or not croniter.is_valid(text):
            raise ValueError(f"expected a cron expression of five fields (minute hour "
                             f"day-of-month month day-of-week) like \"0 10 * * TUE\", got {text!r}")
        return text


class TimeZone(Str):
    def convert(self, value: object) -> str:
        text = super().convert(value)
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {text!r}; use an IANA name like Europe/Berlin "
                             "or UTC") from None
        return text


class ExperimentPath(Str):
    """An experiment file, relative to the game-day file; it must exist."""

    def __init__(self, base: str) -> None:
        super().__init__("experiment file, relative to the game-day file", min_length=1)
        self.base = base

    def convert(self, value: object) -> str:
        text = super().convert(value)
        if not Path(self.base, text).is_file():
            raise ValueError(f"experiment file {text!r} not found (looked in {self.base}); "
                             "paths are relative to the game-day file")
        return text


class Entry(Schema):
    """`path`, `{file, vars, weight}`, or (at the top level) `{parallel: [entries]}`."""

    def __init__(self, base: str, *, nested: bool = False) -> None:
        self.path = ExperimentPath(base)
        self.single = Obj({
            "file": Field(self.path, required=True),
            "vars": Map(Str(), "values for ${name} in this experiment", key_pattern=VAR_NAME),
            "weight": Int("weight in the resilience score", 1, min=0, max=100),
        })
        self.nested = nested

    def _check(self, node: yaml.Node, path: str, ctx: Context, depth: int) -> Any:
        if isinstance(node, yaml.ScalarNode):
            file = self.path.check(node, path, ctx, depth + 1)
            return INVALID if file is INVALID else {"file": file, "vars": {}, "weight": 1,
                                                    "node": node}
        if isinstance(node, yaml.MappingNode) and any(k.value == "parallel" for k, _ in node.value):
            return self._group(node, path, ctx, depth)
        if not isinstance(node, yaml.MappingNode):
            return ctx.problem(node, path, f"expected an experiment path, {{file: ..., vars: "
                                           f"...}} or {{parallel: [...]}}, got {kind_of(node)}")
        raw = self.single.fields_of(node, path, ctx, depth)
        return INVALID if raw is INVALID else {**raw, "node": node}

    def _group(self, node: yaml.MappingNode, path: str, ctx: Context, depth: int) -> Any:
        if self.nested:
            return ctx.problem(node, path, "a parallel group cannot contain another one; list "
                                           "the experiments in one group")
        group = Obj({"parallel": Field(List(Entry(self.path.base, nested=True), min_items=2),
                                       required=True)})
        raw = group.fields_of(node, path, ctx, depth)
        return INVALID if raw is INVALID else {"parallel": raw["parallel"]}

    def json_schema(self) -> dict[str, Any]:
        single = {"anyOf": [{"type": "string"}, self.single.json_schema()]}
        if self.nested:
            return single
        return {"anyOf": [single["anyOf"][0], single["anyOf"][1], {
            "type": "object", "required": ["parallel"], "additionalProperties": False,
            "properties": {"parallel": {"type": "array", "minItems": 2, "items": single}}}]}


def gameday_schema(base: str, formats: Sequence[str] = FORMATS) -> Obj:
    return Obj({
        "title": Field(Str("what this game day is about", min_length=1), required=True),
        "description": Str(),
        "owners": List(Str(min_length=1), "who owns the day: post-mortem action items go to them"),
        "schedule": Obj({
            "cron": Field(Cron("five cron fields, e.g. \"0 10 * * TUE\""), required=True),
            "timezone": TimeZone("IANA time zone the cron fields are read in", "UTC"),
        }, "when `chaos gameday schedule` (or the exported CronJob) runs it"),
        "vars": Map(VarDefault("default value", {"type": ["string", "number", "boolean"]}),
                    "values for ${name} in every experiment; an entry's vars and --var override",
                    key_pattern=VAR_NAME),
        "experiments": Field(List(Entry(base), min_items=1), required=True),
        "stop_on": Str("stop starting experiments after the first failure or abort", "first_abort",
                       choices=STOP_ON),
        "reports": Obj({
            "dir": Str("where reports go (relative to the current directory)", min_length=1),
            "formats": List(Str(choices=tuple(formats)), "which reports to write (default: all)"),
        }),
        "notify": webhooks(EVENTS),
    })


def load_gameday(path: str | os.PathLike[str], variables: Mapping[str, str] | None = None,
                 formats: Sequence[str] = FORMATS) -> GameDay:
    """The game day; `formats` are the report formats its `reports.formats` may list."""
    src = source.read(path)
    root = source.compose(src)
    if not isinstance(root, yaml.MappingNode):
        raise ExperimentInvalid([Problem(source.location(src.name, root), "",
                                         f"a game-day file is a mapping (title:, experiments:, "
                                         f"...), got {kind_of(root)}")], source=src.name)
    here = str(Path(src.name).resolve().parent)
    declared = {str(k.value): os.environ.get(str(k.value), str(v.value))
                for k, v in _vars_node(root) if isinstance(v, yaml.ScalarNode)}
    merged = {"gameday_dir": here, "python": sys.executable, **declared, **(variables or {})}
    ctx = Context(src.name, merged)
    top = gameday_schema(here, formats).fields_of(root, "", ctx)
    if ctx.count:
        raise ExperimentInvalid(ctx.sorted_problems(), source=src.name)
    return _build(top, src, here, declared)


def _vars_node(root: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "vars" and isinstance(
                value, yaml.MappingNode):
            return list(value.value)
    return []


def _build(top: dict[str, Any], src: source.SourceText, here: str,
           declared: Mapping[str, str]) -> GameDay:
    def ref(raw: dict[str, Any]) -> ExperimentRef:
        return ExperimentRef(raw["file"], str(Path(here, raw["file"]).resolve()),
                             frozen(raw["vars"] or {}),
                             raw["weight"] if raw["weight"] is not None else 1,
                             source.location(src.name, raw["node"]))

    steps = tuple(Step(tuple(ref(r) for r in e["parallel"]), parallel=True) if "parallel" in e
                  else Step((ref(e),)) for e in top["experiments"])
    schedule = top["schedule"]
    reports = top["reports"] or {}
    import hashlib

    return GameDay(
        title=top["title"], source=src.name, steps=steps,
        source_hash=hashlib.sha256(src.text.encode("utf-8", "surrogatepass")).hexdigest(),
        description=top["description"] or "", owners=tuple(top["owners"] or ()),
        schedule=Schedule(schedule["cron"], schedule["timezone"] or "UTC") if schedule else None,
        vars=frozen(dict(declared)),  # the environment overrides the file's defaults
        uses=source.referenced(src.text) | declared.keys(),
        stop_on=top["stop_on"] or "first_abort", reports_dir=reports.get("dir"),
        formats=tuple(reports.get("formats") or FORMATS),
        notify=build_webhooks(top["notify"], EVENTS),
    )
