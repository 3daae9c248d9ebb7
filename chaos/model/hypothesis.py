"""The `hypothesis:` section of an experiment file -> Hypothesis: probes, checks, phases.

Beyond its schema (chaos.model.sections), each check must have something to judge it (probes,
traffic or Prometheus with the right queries), a burn rate needs the SLO objective, and a
latency bound must sit below the timeout that gives up on slower requests. What a check needs
comes from the check grammar itself (`CheckSpec.parsed.needs`, chaos.model.experiment.CheckNeeds):
the model never learns the grammar's statistics.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from chaos.errors import Problem
from chaos.model import load_profile, source
from chaos.model.advice import MIN_PROBE_SAMPLES, advise, thin_window
from chaos.model.experiment import (
    CheckSpec,
    Hypothesis,
    Phase,
    ProbeSpec,
    Slo,
    Vocabulary,
    frozen,
)
from chaos.model.promql import parse_selector
from chaos.model.schema import INVALID, Context, Obj, OneOf, join, kind_of
from chaos.model.sections import DURING, TRAFFIC_HTTP, hypothesis_schema
from chaos.units import format_duration


def _probe_names(node: yaml.Node | None, ctx: Context) -> frozenset[str]:
    """Names checks may use, read from the nodes: a probe with a typo still has its name.

    A probe without `name` is called after its kind (`http`); two such probes collide.
    """
    names: dict[str, yaml.Node] = {}
    for i, item in enumerate(node.value if isinstance(node, yaml.SequenceNode) else ()):
        if not isinstance(item, yaml.MappingNode):
            continue
        name = source.child(item, "name")
        if isinstance(name, yaml.ScalarNode):
            candidates = [source.substitute(name, ctx.variables)[0].value]
        else:
            candidates = [k.value for k, _ in item.value if isinstance(k, yaml.ScalarNode)]
        if len(candidates) == 1 and candidates[0] in names:
            ctx.problem(item, f"hypothesis.probes[{i}].name",
                        f"probe name {candidates[0]!r} is used twice; give each probe a `name`")
        for candidate in candidates:
            names.setdefault(candidate, item)
    return frozenset(names)


def _checks(nodes: Any, path: str, ctx: Context, vocab: Vocabulary,
            probes: frozenset[str]) -> tuple[CheckSpec, ...]:
    result = []
    if nodes is INVALID:
        return ()
    for i, node in enumerate(nodes or ()):
        if not isinstance(node, yaml.ScalarNode) or node.value == "":
            ctx.problem(node, join(path, i), f"expected a check like `home >= 99%`, "
                                             f"got {kind_of(node)}")
            continue
        node, missing = source.substitute(node, ctx.variables)
        if missing:
            ctx.problem(node, join(path, i), f"variable ${{{missing[0]}}} is not set: pass --var "
                                             f"{missing[0]}=VALUE, or add it under vars")
            continue
        try:
            result.append(CheckSpec(node.value, vocab.parse_check(node.value, probes),
                                    source.location(ctx.file, node)))
        except ValueError as exc:
            ctx.problem(node, join(path, i), str(exc))
    return tuple(result)


def hypothesis(node: yaml.Node, ctx: Context, vocab: Vocabulary,
                kubernetes: Mapping[str, Any], here: str) -> Hypothesis | None:
    mark = ctx.count
    raw = hypothesis_schema(vocab).fields_of(node, "hypothesis", ctx, 1,
                                              later=frozenset({"during"}))
    if raw is INVALID:
        return None
    names = _probe_names(source.child(node, "probes"), ctx)
    checks = _checks(raw["checks"], "hypothesis.checks", ctx, vocab, names)
    during = DURING.fields_of(raw["during"], "hypothesis.during", ctx, 2) if raw[
        "during"] is not None else {}
    if during is INVALID:
        during = {}
    during_checks = _checks(during.get("checks"), "hypothesis.during.checks", ctx, vocab, names)
    abort = _checks(during.get("abort"), "hypothesis.during.abort", ctx, vocab, names)
    _sources(node, raw, (checks, during_checks, abort), ctx)
    load_profile.check_traffic(raw["traffic"], source.child(node, "traffic"), ctx)
    load_profile.check_until(raw["traffic"], source.child(node, "traffic"), ctx,
                             lambda text: vocab.parse_check(text, names))
    _latencies_below_timeouts(raw, (checks, during_checks, abort), ctx, vocab)
    load_profile.check_capacity_floors(
        raw["traffic"], (checks, during_checks, abort),
        lambda spec, path, message: _located(ctx, spec, path, message))
    prometheus = prometheus_section(raw["prometheus"], source.child(node, "prometheus"), ctx, here)
    if ctx.count != mark:
        return None
    probes = tuple(ProbeSpec(p.get("name") or p["kind"], p["kind"], frozen(p["spec"]),
                             kubernetes=kubernetes) for p in raw["probes"] or ())
    if not raw["checks"]:  # default: every probe succeeds every time
        checks = tuple(CheckSpec(f"{n} >= 100%", vocab.parse_check(f"{n} >= 100%", names))
                       for n in sorted(p.name for p in probes))
    before, after = raw["before"] or {}, raw["after"] or {}
    slo = raw["slo"]
    hyp = Hypothesis(
        slo=Slo(slo["objective"], slo.get("period")) if slo else None,
        traffic=frozen(raw["traffic"]["http"]) if raw["traffic"] else None,
        traffic_profile=frozen(raw["traffic"]["profile"]) if raw["traffic"] and raw[
            "traffic"]["profile"] else None,
        traffic_mix=tuple(frozen(m) for m in raw["traffic"]["mix"] or ()) if raw[
            "traffic"] else (),
        traffic_workers=load_profile.worker_count(raw["traffic"]["workers"]) if raw[
            "traffic"] else 1,
        traffic_remote=frozen(load_profile.remote_workers(raw["traffic"])) or None,
        traffic_kubernetes=frozen(load_profile.kubernetes_workers(raw["traffic"])) or None,
        prometheus=prometheus,
        min_events=raw["min_events"],
        probes=probes, checks=checks,
        before=Phase(window=_get(before, "window", 3.0), every=_get(before, "every", 0.5)),
        during=Phase(every=_get(during, "every", 0.5), checks=during_checks, abort=abort,
                     abort_window=_get(during, "window", 3.0)),
        after=Phase(
            settle=_get(after, "settle", 1.0), window=_get(after, "window", 3.0),
            every=_get(after, "every", 0.5), recover_within=after.get("recover_within"),
        ),
    )
    if probes:
        _thin_windows(node, hyp, ctx)
    return hyp


def _thin_windows(node: yaml.Node, hyp: Hypothesis, ctx: Context) -> None:
    """Warn (chaos.model.advice) about a phase window too short for the probe samples a
    verdict needs: at its `window:` (else `every:`, else the phase) line."""
    needed = hyp.min_events or MIN_PROBE_SAMPLES
    windows = [("before", hyp.before.window, hyp.before.every),
               ("after", hyp.after.window, hyp.after.every)]
    if hyp.during.abort:  # the guardrails' window is judged as often as `during.every`
        windows.insert(1, ("during", hyp.during.abort_window, hyp.during.every))
    for phase, window, every in windows:
        advice = thin_window(window, every, needed)
        if advice is None:
            continue
        phase_node = source.child(node, phase)
        at = (source.child(phase_node, "window") or source.child(phase_node, "every")
              or phase_node or node)
        advise(Problem(source.location(ctx.file, at), f"hypothesis.{phase}.window", advice))


def _sources(node: yaml.Node, raw: dict[str, Any], groups: tuple[tuple[CheckSpec, ...], ...],
             ctx: Context) -> None:
    """Every check needs something to judge: probes, traffic or Prometheus; burn rates need the
    objective; Prometheus latency checks need the histogram."""
    if not raw["probes"] and not raw["traffic"] and not raw["prometheus"]:
        ctx.problem(node, "hypothesis.probes", "required field is missing: something must be "
                    "measured (probes, or traffic or prometheus for SLO checks)")
    # a refused prometheus section was reported already: no follow-on "needs good/total"
    prom = raw["prometheus"] if isinstance(raw["prometheus"], Mapping) else None
    for path, group in zip(("checks", "during.checks", "during.abort"), groups):
        for i, spec in enumerate(group):
            needs = spec.parsed.needs
            if needs.judged_on != "events":
                continue  # a probe check, or one judged on a breaking-point search
            here = f"hypothesis.{path}[{i}]"
            if not raw["traffic"] and not raw["prometheus"]:
                subject = spec.text.split()[0].split("(")[0]
                probes = ", ".join(sorted(p.get("name") or p["kind"]
                                          for p in raw["probes"] or ())) or "none declared"
                _located(ctx, spec, here, f"{spec.text!r} needs a source of events: add "
                                          "`traffic: {http: {url: ..., rate: 100/s}}` or "
                                          "`prometheus: {...}` to the hypothesis (and probe "
                                          f"{subject!r} is not declared either; probes: "
                                          f"{probes})")
            elif prom is not None and not raw["traffic"] and not all(
                    prom.get(query) for query in needs.prometheus):
                _located(ctx, spec, here, f"{spec.text!r} needs "
                                          f"{PROMETHEUS_QUERIES[needs.prometheus]}")
            if needs.needs_objective and not raw["slo"]:
                _located(ctx, spec, here, f"{spec.text!r} is relative to the SLO objective: "
                                          "add `slo: {objective: 99.5%}` to the hypothesis")


# what to add to `prometheus:` for the queries a check needs, as `chaos validate` says it
PROMETHEUS_QUERIES = {("good", "total"): "prometheus.good and prometheus.total queries",
                      ("latency",): "prometheus.latency (the histogram metric's name)"}


def _latencies_below_timeouts(raw: dict[str, Any], groups: tuple[tuple[CheckSpec, ...], ...],
                              ctx: Context, vocab: Vocabulary) -> None:
    """A latency bound at or above the timeout checks nothing the timeout lets through: a
    request slower than the timeout is given up, its latency only known to be above it. Traffic
    latency checks (when traffic is their source) and probe latency checks stay below it."""
    traffic = raw["traffic"].get("http") if isinstance(raw["traffic"], Mapping) and not raw[
        "prometheus"] else None
    traffic = traffic if isinstance(traffic, Mapping) else None
    for path, group in zip(("checks", "during.checks", "during.abort"), groups):
        for i, spec in enumerate(group):
            needs = spec.parsed.needs
            bound = needs.latency_bound
            if bound is None:
                continue
            if needs.judged_on == "events":  # over traffic (or Prometheus)
                if traffic is None:
                    continue
                timeout = _seconds(traffic.get("timeout"), TRAFFIC_HTTP, "timeout")
                where = "traffic.http.timeout"
            else:  # a probe's latency
                probes = raw["probes"] if isinstance(raw["probes"], (list, tuple)) else ()
                probe = next((p for p in probes if isinstance(p, Mapping) and (
                    p.get("name") or p.get("kind")) == needs.subject), None)
                variant = (vocab.probes.variants.get(str(probe.get("kind")))
                           if probe is not None and isinstance(vocab.probes, OneOf) else None)
                if probe is None or not isinstance(variant, Obj):
                    continue
                spec_ = probe.get("spec")
                timeout = _seconds(spec_.get("timeout") if isinstance(spec_, Mapping) else None,
                                   variant, "timeout")
                where = f"the {needs.subject} probe's timeout"
            if timeout is not None and bound >= timeout:
                shown = format_duration(timeout)
                _located(ctx, spec, f"hypothesis.{path}[{i}]",
                         f"{spec.text!r}: the latency bound {format_duration(bound)} is not "
                         f"below {where} ({shown}), so it checks latencies the timeout never "
                         f"lets through (a request slower than {shown} is given up: an error "
                         f"whose latency is only known to be above {shown}); set the bound "
                         f"below {shown}, or raise the timeout above it")


def _seconds(value: Any, schema: Obj, field: str) -> float | None:
    """A duration as given, else the field's declared default (None: the field has none, or
    the value was refused already)."""
    if value is not None:
        return float(value) if isinstance(value, (int, float)) else None
    declared = schema.fields.get(field)
    return None if declared is None else declared.schema.default_value()


def prometheus_section(raw: Mapping[str, Any] | None, node: yaml.Node | None, ctx: Context,
                here: str, field: str = "hypothesis.prometheus") -> Mapping[str, Any] | None:
    """The `prometheus:` section with its CA file made absolute, and there."""
    if not isinstance(raw, Mapping) or not raw:
        return None  # absent, or refused already
    settings, where = dict(raw), field
    if isinstance(settings.get("latency"), str):
        try:
            parse_selector(settings["latency"])
        except ValueError as exc:
            ctx.problem(source.child(node, "latency"), f"{where}.latency", str(exc))
    if settings.get("ca_file"):
        path = Path(here, os.path.expanduser(settings["ca_file"]))
        if not path.is_file():
            ctx.problem(source.child(node, "ca_file"), f"{where}.ca_file",
                        f"no file {path}: name the PEM file of the CA that signed "
                        "Prometheus' certificate (relative to the experiment file)")
        elif problem := _unusable_ca(path):
            ctx.problem(source.child(node, "ca_file"), f"{where}.ca_file",
                        f"{path} holds no usable CA certificate ({problem}): name a PEM file "
                        "with -----BEGIN CERTIFICATE----- blocks")
        settings["ca_file"] = str(path)
    return frozen(settings)


def _unusable_ca(path: Path) -> str | None:
    """Why TLS could not trust certificates signed by the CA in `path`, or None."""
    import ssl

    try:
        ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:  # an unreadable file, a key, DER, garbage
        reason = exc.reason if isinstance(exc, ssl.SSLError) else None
        return str(reason or exc.strerror or exc)
    return None


def _located(ctx: Context, spec: CheckSpec, path: str, message: str) -> None:
    ctx.count += 1
    ctx.problems.append(Problem(spec.location, path, message))


def _get(mapping: Mapping[str, Any], key: str, default: float) -> float:
    value = mapping.get(key)
    return default if value is None else float(value)
