"""Experiment files -> frozen Experiment, reporting every problem with file:line:col and path.

The fixed part of the format is declared in chaos.model.sections; fault parameters, target
selectors, probe kinds and the check grammar come from the layers above through a Vocabulary.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from chaos.errors import ExperimentInvalid, Problem
from chaos.model import fault_list, load_profile, source
from chaos.model.experiment import (
    AlertRule,
    CheckSpec,
    Detection,
    Experiment,
    Hypothesis,
    Limits,
    Phase,
    ProbeSpec,
    Readiness,
    ServiceSpec,
    Slo,
    Vocabulary,
    frozen,
)
from chaos.model.promql import parse_selector
from chaos.model.schema import (
    INVALID,
    Context,
    Obj,
    join,
    kind_of,
)
from chaos.model.sections import (
    DURING,
    RUN_EVENTS,
    TRAFFIC_HTTP,
    build_webhooks,
    experiment_schema,
    hypothesis_schema,
)
from chaos.units import format_duration

BUILTIN_VARS = ("experiment_dir", "python")


def load_file(path: str | os.PathLike[str], vocab: Vocabulary,
              variables: Mapping[str, str] | None = None) -> Experiment:
    return load_text(source.read(path), vocab, variables or {})


def load_text(src: source.SourceText, vocab: Vocabulary,
              variables: Mapping[str, str]) -> Experiment:
    """The whole file is checked before anything is built, so every problem is reported at once."""
    root = source.compose(src)
    _recognise_other_formats(root, src)
    here = str(Path(src.name).resolve().parent)
    declared = {k: os.environ.get(k, v) for k, v in _declared_vars(root).items()}
    # --var beats the environment, which beats the file's own defaults
    merged = {"experiment_dir": here, "python": sys.executable, **declared, **variables}
    if not isinstance(root, yaml.MappingNode):
        raise ExperimentInvalid([Problem(
            source.location(src.name, root), "", f"an experiment file is a mapping (title:, "
            f"faults:, ...), got {kind_of(root)}; write one experiment per file")], source=src.name)
    ctx = Context(src.name, merged)
    top = experiment_schema(vocab).fields_of(root, "", ctx, later=frozenset({"hypothesis",
                                                                             "faults"}))
    # what `${NAME}` took from the environment is a variable of the run like any other: recorded,
    # and masked everywhere when its name says it is a secret (chaos.model.redaction)
    from_env = {name: os.environ[name] for name, _ in source.VAR.findall(src.text)
                if name not in merged and name in os.environ}
    experiment = None if top is INVALID else _experiment(top, root, src, ctx, vocab,
                                                         {**from_env, **merged}, here)
    if ctx.count:
        raise ExperimentInvalid(ctx.sorted_problems(), source=src.name)
    assert experiment is not None
    return experiment


class ChaosToolkitFile(ExperimentInvalid):
    """The file is a Chaos Toolkit experiment: chaos.ctk loads and runs those (this layer cannot
    import it). Carries the parsed tree so nothing is parsed twice."""

    def __init__(self, problems: list[Problem], *, source: str, root: yaml.Node,
                 text: str) -> None:
        super().__init__(problems, source=source)
        self.root, self.text = root, text


class GameDayFile(ExperimentInvalid):
    """The file is a game day (a top-level `experiments:` list): `chaos validate` hands it to
    the game-day loader; elsewhere the message says to run it with `chaos gameday run`."""


CHAOS_TOOLKIT_KEYS = frozenset({"method", "steady-state-hypothesis", "rollbacks"})


def _recognise_other_formats(root: yaml.Node, src: source.SourceText) -> None:
    """Only a top-level key lookup on the tree already parsed: native files pay nothing. The
    CLI catches ChaosToolkitFile and hands the file to chaos.ctk (`chaos run`, `validate`,
    `convert`) and GameDayFile to the game-day loader (`validate`); other callers of this
    loader see the message."""
    keys = {k.value for k, _ in root.value if isinstance(k, yaml.ScalarNode)} if isinstance(
        root, yaml.MappingNode) else set()
    found = sorted(keys & CHAOS_TOOLKIT_KEYS)
    if found:
        raise ChaosToolkitFile([Problem(
            source.location(src.name, root), "",
            f"this is a Chaos Toolkit experiment (it has {', '.join(found)}), not a chaos one; "
            "write it in the chaos format (docs/experiment-format.md)",
        )], source=src.name, root=root, text=src.text)
    if "experiments" in keys:
        raise GameDayFile([Problem(
            source.location(src.name, root), "experiments",
            "this is a game-day file (it lists experiments), not an experiment; run it with "
            f"`chaos gameday run {src.name}`",
        )], source=src.name)


def _declared_vars(root: yaml.Node) -> dict[str, str]:
    value = source.child(root, "vars")
    if not isinstance(value, yaml.MappingNode):
        return {}
    return {str(k.value): str(v.value) for k, v in value.value
            if isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode)}


def _experiment(top: dict[str, Any], root: yaml.Node, src: source.SourceText, ctx: Context,
                vocab: Vocabulary, variables: Mapping[str, str], here: str) -> Experiment | None:
    """Second step: what needs siblings (service names, limits, probe names), then the model."""
    raw_limits = top["limits"]
    limits = None if raw_limits is INVALID else Limits(
        **{k: v for k, v in (raw_limits or {}).items() if v is not None})
    kubernetes = _kubernetes(top["kubernetes"], here)
    services_node = source.child(root, "services")
    service_names = _service_names(services_node, ctx)
    hypothesis = _hypothesis(top["hypothesis"], ctx, vocab, kubernetes, here) if top[
        "hypothesis"] else None
    faults = fault_list.faults(top["faults"], ctx, vocab, service_names, limits, kubernetes)
    detection = _detection(top["detection"], source.child(root, "detection"), root, ctx, here,
                           bool(top["faults"]))
    load_profile.check_spike(hypothesis, faults, root, ctx)
    load_profile.check_under_fault(hypothesis, faults, root, ctx)
    if top["hypothesis"] is None and top["faults"] is None:
        ctx.problem(root, "", "nothing to do: add faults, a hypothesis, or both")
    elif top["hypothesis"] is None and isinstance(top["faults"], yaml.SequenceNode) and not (
            top["faults"].value):
        ctx.problem(top["faults"], "faults", "an empty list and no hypothesis: nothing to do "
                                             "(the run would pass having done nothing); add a "
                                             "fault, or a hypothesis to check")
    if ctx.count or any(top[k] is INVALID for k in top):
        return None
    return Experiment(
        title=top["title"], source=src.name,
        source_hash=_sha256(src.text),
        description=top["description"] or "", tags=tuple(top["tags"] or ()),
        services=tuple(_service(s, here) for s in top["services"] or ()),
        hypothesis=hypothesis, faults=faults, limits=limits or Limits(),
        variables=frozen({k: v for k, v in variables.items() if k not in BUILTIN_VARS}),
        kubernetes=kubernetes, detection=detection,
        notify=build_webhooks(top["notify"], RUN_EVENTS),
        grafana=frozen({k: v for k, v in top["grafana"].items() if v is not None})
        if top["grafana"] else None,
        uses=source.referenced(src.text) | _declared_vars(root).keys(),
    )


def _detection(raw: Any, node: yaml.Node | None, root: yaml.Node, ctx: Context, here: str,
               faults: bool) -> Detection | None:
    """`detection:` with one alert source, something to watch, and faults to time it from."""
    if not isinstance(raw, Mapping):
        return None  # absent, or refused already
    sources = [k for k in ("alertmanager", "prometheus") if raw.get(k)]
    if len(sources) != 1:
        ctx.problem(node, "detection", "name one place to read alerts from: "
                    "`alertmanager: {url: ...}` or `prometheus: {url: ...}`"
                    + (" (not both)" if sources else ""))
        return None
    if not raw.get("expect") and not raw.get("forbid"):
        ctx.problem(node, "detection", "nothing to watch: add `expect:` (alerts that must fire) "
                    "or `forbid:` (alerts that must not)")
    if raw.get("expect") and not faults:
        ctx.problem(source.child(node, "expect"), "detection.expect",
                    "expected alerts are timed from the first injection: add faults")
    kind = sources[0]
    endpoint = _prometheus(raw[kind], source.child(node, kind), ctx, here, f"detection.{kind}")
    rules = []
    for expected, key in ((True, "expect"), (False, "forbid")):
        items = raw.get(key) or ()
        items_node = source.child(node, key)
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or not isinstance(item.get("alert"), Mapping):
                continue
            where = items_node.value[i] if isinstance(items_node, yaml.SequenceNode) else root
            if not item["alert"]:
                ctx.problem(where, f"detection.{key}[{i}].alert", "name at least one label, "
                            "e.g. {alertname: HighErrorRate}")
                continue
            rules.append(AlertRule(
                tuple((label, *matcher) for label, matcher in item["alert"].items()),
                expected, item.get("within"), item.get("resolves_within"),
                source.location(ctx.file, where)))
    if endpoint is None or ctx.count:
        return None
    return Detection(kind, endpoint, float(raw.get("every") or 2.0), tuple(rules))


def _kubernetes(raw: Any, here: str) -> Mapping[str, Any]:
    """The `kubernetes:` section with defaults dropped and the kubeconfig path made absolute."""
    if not isinstance(raw, Mapping):
        return frozen({})
    settings = {k: v for k, v in raw.items() if v is not None and v != []}
    if settings.get("kubeconfig"):
        settings["kubeconfig"] = str(Path(here, os.path.expanduser(settings["kubeconfig"])))
    if "namespaces" in settings:
        settings["namespaces"] = tuple(settings["namespaces"])
    if not settings.get("allow_kube_system"):
        settings.pop("allow_kube_system", None)
    return frozen(settings)


def _service_names(node: yaml.Node | None, ctx: Context) -> set[str] | None:
    """Declared service names, read from the nodes so one broken service does not hide the rest.

    None when the list itself is unreadable: then no target is reported as undeclared.
    """
    if node is None:
        return set()
    if not isinstance(node, yaml.SequenceNode):
        return None
    first: dict[str, yaml.Node] = {}
    for i, item in enumerate(node.value):
        name = source.child(item, "name")
        if not isinstance(name, yaml.ScalarNode):
            continue
        name, _ = source.substitute(name, ctx.variables)
        if name.value in first:
            line = source.location(ctx.file, first[name.value]).line
            ctx.problem(name, f"services[{i}].name", f"service {name.value!r} is already declared "
                                                     f"at line {line}; give each a unique name")
        first.setdefault(name.value, name)
    return set(first)


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


def _hypothesis(node: yaml.Node, ctx: Context, vocab: Vocabulary,
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
    prometheus = _prometheus(raw["prometheus"], source.child(node, "prometheus"), ctx, here)
    if ctx.count != mark:
        return None
    probes = tuple(ProbeSpec(p.get("name") or p["kind"], p["kind"], frozen(p["spec"]),
                             kubernetes=kubernetes) for p in raw["probes"] or ())
    if not raw["checks"]:  # default: every probe succeeds every time
        checks = tuple(CheckSpec(f"{n} >= 100%", vocab.parse_check(f"{n} >= 100%", names))
                       for n in sorted(p.name for p in probes))
    before, after = raw["before"] or {}, raw["after"] or {}
    slo = raw["slo"]
    return Hypothesis(
        slo=Slo(slo["objective"], slo.get("period")) if slo else None,
        traffic=frozen(raw["traffic"]["http"]) if raw["traffic"] else None,
        traffic_profile=frozen(raw["traffic"]["profile"]) if raw["traffic"] and raw[
            "traffic"]["profile"] else None,
        traffic_mix=tuple(frozen(m) for m in raw["traffic"]["mix"] or ()) if raw[
            "traffic"] else (),
        traffic_workers=load_profile.worker_count(raw["traffic"]["workers"]) if raw[
            "traffic"] else 1,
        traffic_remote=frozen(load_profile.remote_workers(raw["traffic"])) or None,
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
            stat = getattr(spec.parsed, "stat", "")
            if not hasattr(spec.parsed, "needs_objective"):
                continue  # a probe check
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
            elif prom is not None and not raw["traffic"] and (
                    stat in ("availability", "error_rate", "burn_rate")
                    and not (prom.get("good") and prom.get("total"))):
                _located(ctx, spec, here, f"{spec.text!r} needs prometheus.good and "
                                          "prometheus.total queries")
            elif prom is not None and not raw["traffic"] and (
                    stat not in ("availability", "error_rate", "burn_rate")
                    and not prom.get("latency")):
                _located(ctx, spec, here, f"{spec.text!r} needs prometheus.latency (the "
                                          "histogram metric's name)")
            if spec.parsed.needs_objective and not raw["slo"]:
                _located(ctx, spec, here, f"{spec.text!r} is relative to the SLO objective: "
                                          "add `slo: {objective: 99.5%}` to the hypothesis")


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
            stat, parsed = getattr(spec.parsed, "stat", ""), spec.parsed
            if hasattr(parsed, "needs_objective"):  # over traffic (or Prometheus)
                if traffic is None or not (stat.startswith("p") or stat == "fraction"):
                    continue
                bound = parsed.param if stat == "fraction" else parsed.threshold
                timeout = _seconds(traffic.get("timeout"), TRAFFIC_HTTP, "timeout")
                where = "traffic.http.timeout"
            elif stat.startswith("p") or stat == "max":  # a probe's latency
                probes = raw["probes"] if isinstance(raw["probes"], (list, tuple)) else ()
                probe = next((p for p in probes if isinstance(p, Mapping) and (
                    p.get("name") or p.get("kind")) == parsed.subject), None)
                variant = getattr(vocab.probes, "variants", {}).get(probe and probe.get("kind"))
                if probe is None or not isinstance(variant, Obj):
                    continue
                bound = parsed.threshold
                spec_ = probe.get("spec")
                timeout = _seconds(spec_.get("timeout") if isinstance(spec_, Mapping) else None,
                                   variant, "timeout")
                where = f"the {parsed.subject} probe's timeout"
            else:
                continue
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


def _prometheus(raw: Mapping[str, Any] | None, node: yaml.Node | None, ctx: Context,
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
        return str(getattr(exc, "reason", None) or exc.strerror or exc)
    return None


def _located(ctx: Context, spec: CheckSpec, path: str, message: str) -> None:
    ctx.count += 1
    ctx.problems.append(Problem(spec.location, path, message))


def _get(mapping: Mapping[str, Any], key: str, default: float) -> float:
    value = mapping.get(key)
    return default if value is None else float(value)


def _sha256(text: str) -> str:
    import hashlib  # here, not at the top: `chaos validate` start-up is measured in ms

    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
