"""The `faults:` list of an experiment file: each fault checked on its own, completely.

Its type, target (the kind fits the type; a service target names a declared service; count or
percent within the limits), parameters, the type's own rules across target and parameters, and
timing (instant faults take no duration, the others a finite one within limits.max_duration).
A bad `start` does not hide a bad `with`: every problem is reported with its location.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import yaml

from chaos.errors import Problem
from chaos.model import source
from chaos.model.advice import Advice, advise
from chaos.model.experiment import FaultShape, FaultSpec, Limits, Target, Vocabulary, frozen
from chaos.model.schema import INVALID, Context, Int, Obj, OneOf, Percent, join, suggest
from chaos.model.sections import FAULT
from chaos.units import format_duration


def faults(node: yaml.Node | None, ctx: Context, vocab: Vocabulary,
            services: set[str] | None, limits: Limits | None,
            kubernetes: Mapping[str, Any]) -> tuple[FaultSpec, ...]:
    """Each fault checked on its own, completely: a bad `start` does not hide a bad `with`."""
    if node is None:
        return ()
    if not isinstance(node, yaml.SequenceNode):
        ctx.problem(node, "faults", "expected a list of faults, like `- type: process.suspend`")
        return ()
    result: list[FaultSpec] = []
    names: dict[str, int] = {}
    for i, item in enumerate(node.value):
        raw = FAULT.fields_of(item, f"faults[{i}]", ctx, 2)
        if raw is INVALID:
            continue
        name = raw["name"]
        if isinstance(name, str):
            if name in names:
                ctx.problem(source.child(item, "name"), f"faults[{i}].name",
                            f"fault name {name!r} is already used by faults[{names[name]}]")
            names.setdefault(name, i)
        fault = _fault(i, item, raw, ctx, vocab, services, limits)
        if fault is not None:
            result.append(dataclasses.replace(fault, kubernetes=kubernetes))
    return tuple(result)


def _target(node: yaml.Node, path: str, ctx: Context, vocab: Vocabulary,
            limits: Limits | None) -> Target | None:
    schema = OneOf(vocab.targets, "what the fault hits", common={
        "count": Int("hit at most this many matches", min=1),
        "percent": Percent("hit this share of the matches (rounded up)"),
    })
    raw = schema.check(node, path, ctx, 3)
    if raw is INVALID:
        return None
    selector = raw["spec"] if isinstance(raw["spec"], Mapping) else {"name": raw["spec"]}
    if not any(v is not None for v in selector.values()):
        fields = vocab.targets[raw["kind"]]
        names = ", ".join(fields.fields) if isinstance(fields, Obj) else "a selector"
        ctx.problem(source.child(node, raw["kind"]), join(path, raw["kind"]),
                    f"say which {raw['kind']}: give at least one of {names} "
                    "(an empty selector would match everything)")
        return None
    count, percent = raw.get("count"), raw.get("percent")
    if count is not None and percent is not None:
        ctx.problem(source.child(node, "percent"), join(path, "percent"),
                    "give either count or percent, not both")
        return None
    if percent is not None and percent <= 0:  # would "succeed" having hit nothing
        ctx.problem(source.child(node, "percent"), join(path, "percent"),
                    "0% hits no target: give a share above 0%, or leave the fault out")
        return None
    if count is not None and limits is not None and count > limits.max_targets:
        ctx.problem(source.child(node, "count"), join(path, "count"),
                    f"count {count} is more than limits.max_targets "
                    f"({limits.max_targets}); lower it or raise the limit")
        return None
    return Target(raw["kind"], frozen(selector), count, percent, source.location(ctx.file, node))


def _fault(i: int, node: yaml.Node, raw: dict[str, Any], ctx: Context, vocab: Vocabulary,
           services: set[str] | None, limits: Limits | None) -> FaultSpec | None:
    path, mark = f"faults[{i}]", ctx.count
    fault_type = raw["type"]
    shape = vocab.faults.get(fault_type) if isinstance(fault_type, str) else None
    if isinstance(fault_type, str) and shape is None:
        known = sorted(vocab.faults)
        ctx.problem(source.child(node, "type"), join(path, "type"),
                    f"unknown fault type {fault_type!r}{suggest(fault_type, known)} "
                    f"(known: {', '.join(known)}; `chaos faults` describes them)")
    target_node = raw["target"]
    target = None
    if target_node is not INVALID:
        target = _target(target_node, join(path, "target"), ctx, vocab, limits)
    params: Any = INVALID
    if shape is not None:
        with_node = raw["with"] or yaml.MappingNode("tag:yaml.org,2002:map", [], node.start_mark,
                                                    node.end_mark)
        params = shape.params.check(with_node, join(path, "with"), ctx, 3)
    if target is not None:
        _target_fits(target, target_node, path, fault_type, shape, services, ctx)
        if ctx.count == mark and shape is not None and shape.check is not None:
            for field, message in shape.check(target, params):
                if isinstance(message, Advice):  # valid, but probably not what was meant
                    advise(Problem(source.location(ctx.file, _deepest(node, field)),
                                   join(path, field), message))
                else:
                    ctx.problem(_deepest(node, field), join(path, field), message)
    duration = _timing(node, raw, path, fault_type, shape, limits, ctx)
    if ctx.count != mark or shape is None or target is None or duration is None:
        return None
    return FaultSpec(
        index=i, name=raw["name"] or f"{fault_type}#{i}", type=fault_type, target=target,
        params=frozen(params), start=raw["start"] or 0.0, duration=duration,
        location=source.location(ctx.file, node),
    )


def _deepest(node: yaml.Node, dotted: str) -> yaml.Node:
    """The node at a dotted path below `node`, or the deepest one of it that exists."""
    for key in dotted.split("."):
        child = source.child(node, key)
        if child is None:
            break
        node = child
    return node


def _target_fits(target: Target, node: yaml.Node, path: str, fault_type: Any,
                 shape: FaultShape | None, services: set[str] | None, ctx: Context) -> None:
    """The fault type supports the target kind; a service target, or a process target's
    `service`, names a declared service."""
    if shape is not None and target.kind not in shape.target_kinds:
        ctx.problem(node, join(path, "target"), f"{fault_type} cannot target a {target.kind}; "
                                                f"it supports: {', '.join(shape.target_kinds)}")
    elif target.kind in ("service", "process") and services is not None:
        field = "name" if target.kind == "service" else "service"
        name = target.selector.get(field)
        if name is None or str(name) in services:
            return
        declared = ", ".join(sorted(services)) or "none"
        if target.kind == "service":
            ctx.problem(source.child(node, "service"), join(path, "target.service"),
                        f"no service named {name!r} is declared under services"
                        f"{suggest(name, sorted(services))} (declared: {declared})")
        else:
            ctx.problem(source.child(source.child(node, "process"), "service") or node,
                        join(path, "target.process.service"),
                        f"no service named {name!r} is declared under services"
                        f"{suggest(str(name), sorted(services))} (declared: {declared})")


def _timing(node: yaml.Node, raw: dict[str, Any], path: str, fault_type: Any,
            shape: FaultShape | None, limits: Limits | None, ctx: Context) -> float | None:
    """The fault's duration (0 for instant faults), or None after reporting what is wrong."""
    start, duration = raw["start"], raw["duration"]
    if shape is None or start is INVALID or duration is INVALID:
        return None
    if shape.instant:
        if duration is not None:
            ctx.problem(source.child(node, "duration"), join(path, "duration"),
                        f"{fault_type} happens at once and holds nothing, so it takes no "
                        "duration; remove it (`start` says when it happens)")
            return None
        duration = 0.0
    elif duration is None:
        ctx.problem(node, join(path, "duration"),
                    "required field is missing: every fault needs a finite duration "
                    "like `duration: 30s` (it is reverted after it)")
        return None
    elif duration <= 0:
        ctx.problem(source.child(node, "duration"), join(path, "duration"),
                    "expected a duration above 0s; a fault must be held for some time")
        return None
    end = (start or 0.0) + duration
    if limits is not None and end > limits.max_duration:
        limit = format_duration(limits.max_duration)
        if start and duration <= limits.max_duration:  # it would fit: the start is late
            ctx.problem(source.child(node, "start"), join(path, "start"),
                        f"the fault starts at {format_duration(start)} and ends at "
                        f"{format_duration(end)}, past limits.max_duration ({limit}); start "
                        "it earlier, shorten it or raise the limit")
            return None
        ctx.problem(source.child(node, "duration") or source.child(node, "start"),
                    join(path, "duration"),
                    f"the fault ends at {format_duration(end)}, past limits.max_duration "
                    f"({limit}); shorten it or raise the limit")
        return None
    return float(duration)
