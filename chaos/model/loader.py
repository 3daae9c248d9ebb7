"""Experiment files -> frozen Experiment, reporting every problem with file:line:col and path.

The fixed part of the format is declared here with chaos.model.schema; fault parameters, target
selectors, probe kinds and the check grammar come from the layers above through a Vocabulary.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from chaos.errors import ExperimentInvalid, Problem
from chaos.model import source
from chaos.model.experiment import (
    CheckSpec, Experiment, FaultSpec, Hypothesis, Limits, Phase, ProbeSpec, Readiness,
    ServiceSpec, Target, Vocabulary, frozen,
)
from chaos.model.schema import (
    INVALID, Argv, Context, Duration, Field, Int, List, Map, Obj, OneOf, Percent, Schema, Str,
    join,
)

NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"
MIN_EVERY = 0.05
BUILTIN_VARS = ("experiment_dir", "python")


class Raw(Schema):
    """Keeps the node for a second pass that needs context (fault params, checks)."""

    def __init__(self, doc: str = "", json: dict[str, Any] | None = None) -> None:
        self.doc, self.json = doc, json or {}

    def _check(self, node: yaml.Node, path: str, ctx: Context, depth: int) -> Any:
        return node

    def json_schema(self) -> dict[str, Any]:
        return self._with_doc(dict(self.json))


CHECKS = List(Raw("a check like `home >= 99%`", {"type": "string"}))

READY = OneOf(
    {
        "http": Str("URL that must answer 2xx"),
        "tcp": Str("host:port that must accept a connection", pattern=r".+:\d+"),
        "exec": Argv("command that must exit 0"),
        "delay": Duration("just wait this long"),
    },
    "how to tell the service is ready",
    common={"timeout": Duration("give up after", "10s", min=0.1)},
)

SERVICE = Obj({
    "name": Field(Str("service name, used by targets", pattern=NAME), required=True),
    "run": Field(Argv(), required=True),
    "cwd": Str("working directory, relative to the experiment file"),
    "env": Map(Str(), "extra environment variables"),
    "ready": READY,
    "stop": Obj({
        "signal": Str("signal that stops it", "TERM"),
        "timeout": Duration("then SIGKILL after", "5s"),
    }),
}, "a process started before the experiment and stopped after it")

BEFORE = Obj({
    "window": Duration("how long to sample", "3s", min=0),
    "every": Duration("time between probe rounds", "500ms", min=MIN_EVERY),
})
DURING = Obj({
    "every": Duration("time between probe rounds", "500ms", min=MIN_EVERY),
    "checks": CHECKS,
    "abort": List(Raw("a guardrail like `home < 50%`", {"type": "string"}),
                  "abort and revert everything at once when one of these holds"),
    "window": Duration("guardrails look at this much recent history", "3s", min=MIN_EVERY),
})
AFTER = Obj({
    "settle": Duration("wait after the last revert before measuring", "1s", min=0),
    "window": Duration("how long to sample", "3s", min=0),
    "every": Duration("time between probe rounds", "500ms", min=MIN_EVERY),
    "recover_within": Duration("checks must pass again within this after the last revert"),
})

FAULT = Obj({
    "name": Str("a name for reports", pattern=NAME),
    "type": Field(Str("fault type, see `chaos faults`"), required=True),
    "target": Field(Raw("what the fault hits", {"type": "object"}), required=True),
    "with": Raw("the fault's parameters, see `chaos faults`", {"type": "object"}),
    "start": Duration("offset from the start of the during phase", "0s", min=0),
    "duration": Duration("how long the fault is held"),
})

LIMITS = Obj({
    "max_duration": Duration("refuse a plan longer than this", "10m", min=1),
    "max_targets": Int("refuse to hit more targets than this per fault", 5, min=1),
})


def _hypothesis_schema(vocab: Vocabulary) -> Obj:
    return Obj({
        "probes": Field(List(vocab.probes, min_items=1), required=True),
        "checks": CHECKS,
        "before": BEFORE,
        "during": DURING,
        "after": AFTER,
    }, "steady state: probes and the checks over them")


def experiment_schema(vocab: Vocabulary) -> Obj:
    return Obj({
        "title": Field(Str("what this experiment proves", min_length=1), required=True),
        "description": Str(),
        "tags": List(Str()),
        "vars": Map(Raw("default value", {"type": ["string", "number", "boolean"]}),
                    "defaults for ${name} substitution; --var and the environment override"),
        "services": List(SERVICE),
        "hypothesis": _hypothesis_schema(vocab),
        "faults": List(FAULT),
        "limits": LIMITS,
    })


def load_file(path: str | os.PathLike[str], vocab: Vocabulary,
              variables: Mapping[str, str] | None = None) -> Experiment:
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExperimentInvalid([Problem(None, "", "file not found")], source=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExperimentInvalid([Problem(None, "", f"cannot read: {exc}")], source=name) from None
    return load_text(source.SourceText(name, text), vocab, variables or {})


def _declared_vars(root: yaml.Node) -> dict[str, str]:
    if not isinstance(root, yaml.MappingNode):
        return {}
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "vars" and isinstance(
            value, yaml.MappingNode
        ):
            return {str(k.value): str(v.value) for k, v in value.value
                    if isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode)}
    return {}


def load_text(src: source.SourceText, vocab: Vocabulary,
              variables: Mapping[str, str]) -> Experiment:
    root = source.compose(src)
    if isinstance(root, yaml.MappingNode) and any(
        isinstance(k, yaml.ScalarNode) and k.value in ("method", "steady-state-hypothesis")
        for k, _ in root.value
    ):
        raise ExperimentInvalid([Problem(source.location(src.name, root), "",
                                         "this is a Chaos Toolkit experiment, not a chaos one")],
                                source=src.name)
    here = str(Path(src.name).resolve().parent)
    merged = {"experiment_dir": here, "python": sys.executable, **_declared_vars(root),
              **variables}
    ctx = Context(src.name, merged)
    data = experiment_schema(vocab).check(root, "", ctx)
    experiment = None
    if data is not INVALID:
        experiment = _build(data, src, ctx, vocab, merged, here)
    if ctx.problems:
        raise ExperimentInvalid(ctx.problems, source=src.name)
    assert experiment is not None
    return experiment


def _build(data: dict[str, Any], src: source.SourceText, ctx: Context, vocab: Vocabulary,
           variables: Mapping[str, str], here: str) -> Experiment | None:
    limits = Limits(**{k: v for k, v in (data["limits"] or {}).items() if v is not None})
    services = tuple(_service(s, here) for s in data["services"] or ())
    names = [s.name for s in services]
    for i, name in enumerate(names):
        if names.index(name) != i:
            ctx.problem(None, f"services[{i}].name", f"service {name!r} is declared twice")
    hypothesis = _hypothesis(data["hypothesis"], ctx, vocab) if data["hypothesis"] else None
    faults = tuple(
        f for i, raw in enumerate(data["faults"] or ())
        if (f := _fault(i, raw, ctx, vocab, set(names), limits)) is not None
    )
    if ctx.problems:
        return None
    return Experiment(
        title=data["title"], source=src.name,
        source_hash=hashlib.sha256(src.text.encode()).hexdigest(),
        description=data["description"] or "", tags=tuple(data["tags"] or ()),
        services=services, hypothesis=hypothesis, faults=faults, limits=limits,
        variables=frozen({k: v for k, v in variables.items() if k not in BUILTIN_VARS}),
    )


def _service(raw: dict[str, Any], here: str) -> ServiceSpec:
    ready = None
    if raw["ready"]:
        r = raw["ready"]
        ready = Readiness(r["kind"], frozen({"value": r["spec"]}), r["timeout"] or 10.0)
    stop = raw["stop"] or {}
    cwd = raw["cwd"]
    return ServiceSpec(
        name=raw["name"], run=tuple(raw["run"]),
        cwd=str(Path(here, cwd)) if cwd else here,
        env=frozen(raw["env"] or {}), ready=ready,
        stop_signal=stop.get("signal") or "TERM", stop_timeout=stop.get("timeout") or 5.0,
    )


def _checks(nodes: Any, path: str, ctx: Context, vocab: Vocabulary,
            probes: frozenset[str]) -> tuple[CheckSpec, ...]:
    result = []
    for i, node in enumerate(nodes or ()):
        loc = source.location(ctx.file, node)
        if not isinstance(node, yaml.ScalarNode):
            ctx.problem(node, join(path, i), "expected a check like `home >= 99%`")
            continue
        text = str(source.substitute(node, ctx.variables, ctx.missing_vars).value)
        try:
            result.append(CheckSpec(text, vocab.parse_check(text, probes), loc))
        except ValueError as exc:
            ctx.problem(node, join(path, i), str(exc))
    return tuple(result)


def _hypothesis(raw: dict[str, Any], ctx: Context, vocab: Vocabulary) -> Hypothesis:
    probes = []
    for i, p in enumerate(raw["probes"]):
        name = p.get("name") or p["kind"]
        if any(existing.name == name for existing in probes):
            ctx.problem(None, f"hypothesis.probes[{i}].name",
                        f"probe name {name!r} is used twice; give each probe a `name`")
        probes.append(ProbeSpec(name, p["kind"], frozen(p["spec"])))
    names = frozenset(p.name for p in probes)
    checks = _checks(raw["checks"], "hypothesis.checks", ctx, vocab, names)
    if not raw["checks"]:  # default: every probe succeeds every time
        checks = tuple(CheckSpec(f"{n} >= 100%", vocab.parse_check(f"{n} >= 100%", names))
                       for n in sorted(names))
    before, during, after = (raw[k] or {} for k in ("before", "during", "after"))
    return Hypothesis(
        probes=tuple(probes), checks=checks,
        before=Phase(window=_get(before, "window", 3.0), every=_get(before, "every", 0.5)),
        during=Phase(
            every=_get(during, "every", 0.5),
            checks=_checks(during.get("checks"), "hypothesis.during.checks", ctx, vocab, names),
            abort=_checks(during.get("abort"), "hypothesis.during.abort", ctx, vocab, names),
            abort_window=_get(during, "window", 3.0),
        ),
        after=Phase(
            settle=_get(after, "settle", 1.0), window=_get(after, "window", 3.0),
            every=_get(after, "every", 0.5), recover_within=after.get("recover_within"),
        ),
    )


def _get(mapping: Mapping[str, Any], key: str, default: float) -> float:
    value = mapping.get(key)
    return default if value is None else float(value)


def _target(node: yaml.Node, path: str, ctx: Context, vocab: Vocabulary) -> Target | None:
    schema = OneOf(vocab.targets, "what the fault hits", common={
        "count": Int("hit at most this many matches", min=1),
        "percent": Percent("hit this share of the matches (rounded up)"),
    })
    raw = schema.check(node, path, ctx)
    if raw is INVALID:
        return None
    selector = raw["spec"] if isinstance(raw["spec"], Mapping) else {"name": raw["spec"]}
    if raw.get("count") is not None and raw.get("percent") is not None:
        ctx.problem(node, path, "give either count or percent, not both")
        return None
    return Target(raw["kind"], frozen(selector), raw.get("count"), raw.get("percent"),
                  source.location(ctx.file, node))


def _fault(i: int, raw: dict[str, Any], ctx: Context, vocab: Vocabulary,
           services: set[str], limits: Limits) -> FaultSpec | None:
    path = f"faults[{i}]"
    target_node: yaml.Node = raw["target"]
    shape = vocab.faults.get(raw["type"])
    if shape is None:
        known = ", ".join(sorted(vocab.faults))
        ctx.problem(target_node, join(path, "type"),
                    f"unknown fault type {raw['type']!r}; known types: {known}")
        return None
    target = _target(target_node, join(path, "target"), ctx, vocab)
    with_node = raw["with"] or yaml.MappingNode("tag:yaml.org,2002:map", [], target_node.start_mark,
                                                target_node.end_mark)
    params = shape.params.check(with_node, join(path, "with"), ctx)
    if target is None or params is INVALID:
        return None
    if target.kind not in shape.target_kinds:
        ctx.problem(target_node, join(path, "target"),
                    f"{raw['type']} cannot target a {target.kind}; "
                    f"it supports: {', '.join(shape.target_kinds)}")
        return None
    if target.kind == "service" and target.selector.get("name") not in services:
        ctx.problem(target_node, join(path, "target.service"),
                    f"no service named {target.selector.get('name')!r} is declared under services")
        return None
    duration = raw["duration"]
    if shape.instant:
        duration = duration or 0.0
    elif duration is None or duration <= 0:
        ctx.problem(target_node, join(path, "duration"),
                    "every fault needs a finite duration like 30s (it is reverted after it)")
        return None
    start = raw["start"] or 0.0
    if start + duration > limits.max_duration:
        ctx.problem(target_node, join(path, "duration"),
                    f"the fault ends at {start + duration:g}s, past limits.max_duration "
                    f"({limits.max_duration:g}s); shorten it or raise the limit")
        return None
    return FaultSpec(
        index=i, name=raw["name"] or f"{raw['type']}#{i}", type=raw["type"], target=target,
        params=frozen(params), start=start, duration=duration,
        location=source.location(ctx.file, target_node),
    )
