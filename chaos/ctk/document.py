"""Chaos Toolkit experiment files -> a CtkExperiment, checked with every problem located.

The loader (chaos.model.loader) recognises such a file on the tree it already parsed and hands
that tree over (ChaosToolkitFile), so nothing is parsed twice. We turn the tree into the plain
data chaoslib expects, remembering where each part came from, and check it piece by piece with
chaoslib's own validators: every problem is reported at once with file:line:col and a path
(chaoslib alone stops at the first and does not say where). Configuration and secrets are not
loaded here: validating a file must not read a vault or the environment.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from chaos.errors import ExperimentInvalid, Location, Problem
from chaos.model import source

ROLLBACK_STRATEGIES = ("default", "always", "never", "deviated")
HYPOTHESIS_STRATEGIES = ("default", "before-method-only", "after-method-only",
                         "during-method-only", "continuously", "skip")


@dataclass(frozen=True)
class CtkExperiment:
    """A Chaos Toolkit experiment as chaoslib reads it, plus where each part is in the file."""

    source: str
    source_hash: str
    document: Mapping[str, Any]  # never handed out: runs get a deep copy (chaoslib mutates)
    locations: Mapping[str, Location] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return str(self.document.get("title", ""))

    @property
    def description(self) -> str:
        return str(self.document.get("description", ""))

    @property
    def tags(self) -> list[str]:
        return [str(t) for t in self.document.get("tags") or []]

    def copy(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.document))

    def where(self, path: str) -> str:
        loc = self.locations.get(path)
        return str(loc) if loc else self.source

    def activities(self) -> list[tuple[str, Mapping[str, Any]]]:
        """(path, activity) of every hypothesis probe, method activity and rollback."""
        doc = self.document
        hyp = doc.get("steady-state-hypothesis") or {}
        found = [(f"steady-state-hypothesis.probes[{i}]", p)
                 for i, p in enumerate(hyp.get("probes") or [])]
        for section in ("method", "rollbacks"):
            found += [(f"{section}[{i}]", a) for i, a in enumerate(doc.get(section) or [])]
        return [(path, a) for path, a in found if isinstance(a, Mapping)]


def load(path: str | os.PathLike[str], *, providers: bool = True) -> CtkExperiment:
    """Read a file that must be a Chaos Toolkit experiment. `providers=False` (`chaos convert`)
    checks the structure only: the extensions it names need not be installed."""
    from chaos.model.loader import CHAOS_TOOLKIT_KEYS

    src = source.read(path)
    root = source.compose(src)
    keys = {k.value for k, _ in root.value} if isinstance(root, yaml.MappingNode) else set()
    if not keys & CHAOS_TOOLKIT_KEYS:
        raise ExperimentInvalid([Problem(source.location(src.name, root), "",
                                         "not a Chaos Toolkit experiment (no method, "
                                         "steady-state-hypothesis or rollbacks)")],
                                source=src.name)
    return from_tree(root, src.text, src.name, providers=providers)


def from_tree(root: yaml.Node, text: str, name: str, *, providers: bool = True
              ) -> CtkExperiment:
    problems: list[Problem] = []
    locations: dict[str, Location] = {}
    data = _data(root, "", name, locations, problems)
    if not problems:
        problems = validate(data, lambda p: locations.get(p), providers=providers)
    if problems:
        raise ExperimentInvalid(sorted(problems, key=_order), source=name)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return CtkExperiment(name, digest, data, locations)


def _order(problem: Problem) -> tuple[int, int]:
    return (problem.location.line, problem.location.column) if problem.location else (0, 0)


def _data(node: yaml.Node, path: str, name: str, locations: dict[str, Location],
          problems: list[Problem]) -> Any:
    locations[path] = source.location(name, node)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if isinstance(key_node, yaml.ScalarNode):
                try:
                    key = _paired(key)
                except ValueError as exc:
                    problems.append(Problem(source.location(name, key_node), path, str(exc)))
            sub = f"{path}.{key}" if path else key
            if key in result:
                problems.append(Problem(source.location(name, key_node), sub,
                                        "duplicate key; keep one"))
            result[key] = _data(value_node, sub, name, locations, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_data(n, f"{path}[{i}]", name, locations, problems)
                for i, n in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    try:
        value = source.scalar_value(node)
        return _paired(value) if isinstance(value, str) else value
    except ValueError as exc:
        problems.append(Problem(locations[path], path, str(exc)))
        return None


def _paired(text: str) -> str:
    """JSON writes a character beyond U+FFFF as two escapes (`"\\ud83d\\ude80"`, what Python's
    json.dump writes by default); YAML reads them as two lone surrogates, which no journal
    can be written with. Join them as JSON parsers do."""
    if not any("\ud800" <= c <= "\udfff" for c in text):
        return text
    try:
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        raise ValueError("a \\ud800-\\udfff escape without its other half (a character "
                         "written half); write the character itself") from None


def validate(doc: Any, where: Callable[[str], Location | None], *,
             providers: bool = True) -> list[Problem]:
    """Every problem of a Chaos Toolkit document, checked with chaoslib's validators (which
    import python providers' modules and look process paths up; not with providers=False)."""
    problems: list[Problem] = []

    def _activity(path: str, activity: Any, bad: Callable[[str, str], None]) -> bool:
        return _check_activity(path, activity, bad, providers)


    def bad(path: str, message: str) -> None:
        problems.append(Problem(where(path), path, message))

    if not isinstance(doc, dict):
        bad("", "a Chaos Toolkit experiment is a mapping")
        return problems
    if "chaoslib-version" in doc:
        bad("", "this is a Chaos Toolkit journal (a run's record), not an experiment; run "
                "the experiment file it came from")
        return problems
    for key in ("title", "description"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            bad(key if key in doc else "", f"Chaos Toolkit requires a `{key}` (text)")
    if "method" not in doc:
        bad("", "Chaos Toolkit requires a `method` (a list, which may be empty)")
    tags = doc.get("tags", [])
    if not isinstance(tags, list) or any(not isinstance(t, str) or not t for t in tags):
        bad("tags", "tags are a list of non-empty strings")
    probes = _hypothesis(doc, bad, providers)
    names = {p.get("name") for p in probes if isinstance(p, dict) and
             isinstance(p.get("name"), str)}
    for section in ("method", "rollbacks"):
        items = doc.get(section, [])
        if not isinstance(items, list):
            bad(section, f"`{section}` is a list of activities")
            continue
        for i, activity in enumerate(items):
            _activity(f"{section}[{i}]", activity, bad)
            if isinstance(activity, dict) and isinstance(activity.get("name"), str):
                names.add(activity["name"])
    method = doc.get("method")
    for i, activity in enumerate(method if isinstance(method, list) else []):
        ref = activity.get("ref") if isinstance(activity, dict) else None
        if isinstance(ref, str) and ref and ref not in names:
            bad(f"method[{i}].ref", f"no activity named {ref!r} in this experiment")
    for section in ("configuration", "secrets"):
        if not isinstance(doc.get(section, {}), dict):
            bad(section, f"`{section}` is a mapping")
    _runtime(doc.get("runtime"), bad)
    if not problems and providers:
        _controls(doc, bad)
    return problems


def _hypothesis(doc: dict[str, Any], bad: Callable[[str, str], None],
                providers: bool) -> list[Any]:
    from chaoslib.hypothesis import ensure_hypothesis_tolerance_is_valid

    hyp = doc.get("steady-state-hypothesis")
    if hyp is None:
        return []
    if not isinstance(hyp, dict):
        bad("steady-state-hypothesis", "a mapping with a title and probes")
        return []
    if not hyp.get("title"):
        bad("steady-state-hypothesis", "the hypothesis needs a `title`")
    probes = hyp.get("probes") or []
    if not isinstance(probes, list):
        bad("steady-state-hypothesis.probes", "a list of probes")
        return []
    for i, probe in enumerate(probes):
        path = f"steady-state-hypothesis.probes[{i}]"
        if _check_activity(path, probe, bad, providers) and "tolerance" not in probe:
            bad(path, "a hypothesis probe needs a `tolerance` (the value it must return)")
        elif isinstance(probe, dict) and "tolerance" in probe and providers and _guard(
                f"{path}.tolerance", bad,
                functools.partial(ensure_hypothesis_tolerance_is_valid, probe["tolerance"])):
            _probe_tolerance(f"{path}.tolerance", probe["tolerance"], bad)
    return probes


def _probe_tolerance(path: str, tolerance: Any, bad: Callable[[str, str], None]) -> None:
    """chaoslib hands a probe tolerance the value as `arguments.value`, and fails with
    KeyError: 'arguments' in the middle of the run when there are none."""
    if isinstance(tolerance, dict) and tolerance.get("type") == "probe":
        provider = tolerance.get("provider")
        if isinstance(provider, dict) and not isinstance(provider.get("arguments"), dict):
            bad(f"{path}.provider", "a probe tolerance needs `arguments` (a mapping, `{}` if "
                                    "none): chaoslib passes the probed value in it as `value`")


def _check_activity(path: str, activity: Any, bad: Callable[[str, str], None],
                    providers: bool) -> bool:
    from chaoslib.activity import ensure_activity_is_valid

    if not isinstance(activity, dict):
        bad(path, "an activity is a mapping (type, name, provider)")
        return False
    if not providers:
        if activity.get("ref") or (activity.get("name") and isinstance(
                activity.get("provider"), dict)):
            return True
        bad(path, "an activity needs a name and a provider (or a ref)")
        return False
    return _guard(path, bad, lambda: ensure_activity_is_valid(activity)) and \
        _check_ours(path, activity, bad)


def _check_ours(path: str, activity: dict[str, Any], bad: Callable[[str, str], None]) -> bool:
    """A call to chaos.ctk.actions with literal arguments is checked as the call will check
    them, so a bad fault is refused before anything runs (not found failed mid-method)."""
    provider = activity.get("provider") or {}
    arguments = provider.get("arguments") or {}
    if provider.get("type") != "python" or provider.get("module") != "chaos.ctk.actions" or \
            not isinstance(arguments, dict) or "${" in repr(arguments):
        return True
    from chaos.ctk import actions

    where = f"{path}.provider.arguments"
    problems = actions.check(str(provider.get("func")), arguments)
    for argument, message in problems:
        field = where
        if argument and _has(arguments, argument):
            field = f"{where}.{argument}"
        bad(field, f"{provider.get('func')}: {message}")
    return not problems


def _has(arguments: dict[str, Any], dotted: str) -> bool:
    """Whether `a.b[0].c` names something in the arguments as written."""
    value: Any = arguments
    for part in dotted.replace("[", ".[").split("."):
        if part.startswith("["):
            index = int(part.strip("[]"))
            if not isinstance(value, list) or index >= len(value):
                return False
            value = value[index]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return False
    return True


def _guard(path: str, bad: Callable[[str, str], None], check: Callable[[], object]) -> bool:
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - chaoslib raises InvalidActivity, and TypeError or
        # AttributeError on wrongly shaped input: both are the file being wrong
        bad(path, _clean(exc))
        return False
    return True


def _clean(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "could not find Python module" in text:
        import sys

        text += (f"; install it where chaos runs ({sys.executable} -m pip install ...), "
                 "or put it on PYTHONPATH")
    return text if type(exc).__module__.startswith("chaoslib") else f"{type(exc).__name__}: {text}"


def _runtime(runtime: Any, bad: Callable[[str, str], None]) -> None:
    if runtime is None:
        return
    if not isinstance(runtime, dict):
        bad("runtime", "a mapping (rollbacks, hypothesis)")
        return
    sections: dict[str, dict[str, Any]] = {}
    for key, what in (("rollbacks", "strategy"), ("hypothesis", "strategy, frequency, fail_fast")):
        section = runtime.get(key)
        if section is not None and not isinstance(section, dict):
            bad(f"runtime.{key}", f"a mapping ({what})")
        sections[key] = section if isinstance(section, dict) else {}
    strategy = sections["rollbacks"].get("strategy")
    if strategy is not None and strategy not in ROLLBACK_STRATEGIES:
        bad("runtime.rollbacks.strategy", f"one of {', '.join(ROLLBACK_STRATEGIES)}")
    hyp = sections["hypothesis"]
    if hyp.get("strategy") is not None and hyp["strategy"] not in HYPOTHESIS_STRATEGIES:
        bad("runtime.hypothesis.strategy", f"one of {', '.join(HYPOTHESIS_STRATEGIES)}")
    frequency = hyp.get("frequency")
    if frequency is not None and (isinstance(frequency, bool) or not isinstance(
            frequency, int | float) or frequency <= 0):
        bad("runtime.hypothesis.frequency",
            f"seconds between two rounds of the hypothesis, a number > 0; got {frequency!r}")
    if hyp.get("fail_fast") is not None and not isinstance(hyp["fail_fast"], bool):
        bad("runtime.hypothesis.fail_fast", f"true or false; got {hyp['fail_fast']!r}")


def _controls(doc: dict[str, Any], bad: Callable[[str, str], None]) -> None:
    from chaoslib.control import validate_controls

    _guard("controls", bad, lambda: validate_controls(doc))
