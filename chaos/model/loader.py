"""Experiment files -> frozen Experiment, reporting every problem with file:line:col and path.

The fixed part of the format is declared in chaos.model.sections; fault parameters, target
selectors, probe kinds and the check grammar come from the layers above through a Vocabulary.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from chaos.errors import ExperimentInvalid, Problem
from chaos.model import fault_list, load_profile, source
from chaos.model.experiment import (
    AlertRule,
    Detection,
    Experiment,
    Limits,
    Readiness,
    ServiceSpec,
    Vocabulary,
    frozen,
)
from chaos.model.hypothesis import hypothesis as hypothesis_section
from chaos.model.hypothesis import prometheus_section
from chaos.model.schema import (
    INVALID,
    Context,
    join,
    kind_of,
)
from chaos.model.sections import RUN_EVENTS, build_webhooks, experiment_schema

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
    hypothesis = hypothesis_section(top["hypothesis"], ctx, vocab, kubernetes, here) if top[
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
    endpoint = prometheus_section(raw[kind], source.child(node, kind), ctx, here,
                                  f"detection.{kind}")
    if endpoint is not None and (why := _unusable_url(str(endpoint.get("url") or ""))):
        ctx.problem(source.child(source.child(node, kind), "url"), f"detection.{kind}.url", why)
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


def _unusable_url(url: str) -> str | None:
    """Why the alert source's URL cannot be asked, or None; never the URL itself (it may hold
    a password)."""
    if held := _VAR_LEFT.search(url):
        return (f"the URL still holds {held.group(0)} after substitution: a variable's value is "
                "not substituted itself (no ${a} inside ${b}); give the whole URL with --var, or "
                "write it out")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises only when read
    except ValueError as exc:
        return f"not a usable URL: {exc}"
    return None


_VAR_LEFT = re.compile(r"\$\{[^}]*\}?")


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


def _sha256(text: str) -> str:
    import hashlib  # here, not at the top: `chaos validate` start-up is measured in ms

    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
