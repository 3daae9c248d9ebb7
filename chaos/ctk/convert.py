"""Chaos Toolkit experiments -> native experiment documents, where an equivalent exists.

What converts: http and process hypothesis probes and chaostoolkit-kubernetes pod-count and
deployment-availability probes (-> our probes, each with a `>= 100%` check, since Chaos
Toolkit expects every answer within tolerance), our faults called through
chaos.ctk.actions, process-kill style actions (`pkill`, `killall`, `kill`) and the common
chaostoolkit-kubernetes actions (pod termination, scaling, cordon, drain). Configuration
literals become `vars` (`${name}` means the same in both formats). Everything else - other
python probes, arbitrary actions, rollbacks that our faults make unnecessary - is listed with its
file:line and the reason, never silently dropped. The result is checked by the native loader.

Timing: Chaos Toolkit's method is sequential, but its fault actions return at once and the
fault lasts on; so a converted fault starts at the sum of the pauses before it.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos.ctk.document import CtkExperiment
from chaos.ctk.mapping import Unconvertible, fault_of, probe_of

PROBE_NAME = re.compile(r"[^A-Za-z0-9_-]+")
SHELL = re.compile(r"[|;&<>()$`*?]")
VARIABLE = re.compile(r"\$\{[^}]*\}")  # ${name}: substituted by us, not by a shell


@dataclass(frozen=True)
class Skipped:
    where: str  # file:line:col
    path: str  # method[2]
    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.path} ({self.name}): not converted: {self.why}"


@dataclass
class Conversion:
    document: dict[str, Any]
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # where each converted entry came from, in order: "hypothesis.probes" / "faults" -> (where,
    # path, name) of the Chaos Toolkit activity, so an entry the native loader refuses can be
    # left out and listed
    origins: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)

    def drop(self, refused: Mapping[str, Mapping[int, str]]) -> None:
        """Leave out the entries the native loader refused ({section: {index: why}}), listed
        as not converted with the loader's reason."""
        hyp = self.document.get("hypothesis") or {}
        for section, whys in refused.items():
            entries = hyp.get("probes") if section == "hypothesis.probes" else \
                self.document.get(section)
            origins = self.origins.get(section, [])
            if not isinstance(entries, list):
                continue
            for i, why in whys.items():
                if i < len(origins):
                    self.skipped.append(Skipped(*origins[i], why))
            entries[:] = [e for i, e in enumerate(entries) if i not in whys]
            self.origins[section] = [o for i, o in enumerate(origins) if i not in whys]
        if hyp:
            names = {p["name"] for p in hyp["probes"]}
            hyp["checks"] = [c for c in hyp["checks"] if c.split(" ")[0] in names]
            if not hyp["probes"]:
                del self.document["hypothesis"]
        if "faults" in self.document and not self.document["faults"]:
            del self.document["faults"]
        self.skipped.sort(key=lambda s: _line(s.where))


def _line(where: str) -> tuple[int, int]:
    parts = where.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[1]), int(parts[2])
    return 0, 0


def convert(exp: CtkExperiment) -> Conversion:
    doc = exp.document
    out: dict[str, Any] = {"title": exp.title}
    if exp.description:
        out["description"] = exp.description
    if exp.tags:
        out["tags"] = exp.tags
    result = Conversion(out)
    variables, renames = _vars(doc.get("configuration") or {}, doc.get("secrets") or {},
                               result.notes)
    if variables:
        out["vars"] = variables

    def skip(path: str, activity: Mapping[str, Any], why: str) -> None:
        name = str(activity.get("name") or activity.get("ref") or "?")
        result.skipped.append(Skipped(exp.where(path), path, name, why))

    def origin(section: str, path: str, activity: Mapping[str, Any]) -> None:
        result.origins.setdefault(section, []).append(
            (exp.where(path), path, str(activity.get("name") or "?")))

    probes = _probes(doc, skip, origin, result.notes)
    if probes:
        out["hypothesis"] = {"probes": probes,
                             "checks": [f"{p['name']} >= 100%" for p in probes],
                             "before": {"window": "1s", "every": "250ms"},
                             "after": {"settle": "0s", "window": "1s", "every": "250ms"}}
    faults = _faults(doc, skip, origin, result.notes)
    if faults:
        out["faults"] = faults
    for i, activity in enumerate(doc.get("rollbacks") or []):
        provider = activity.get("provider") or {}
        if provider.get("module") == "chaos.ctk.actions":
            continue  # our faults revert themselves
        skip(f"rollbacks[{i}]", activity, "rollbacks are not part of our format: every fault "
                                          "reverts itself at its end, on failure and on signals")
    result.document = _renamed(out, renames)
    return result


def _vars(config: Mapping[str, Any], secrets: Mapping[str, Any], notes: list[str]
          ) -> tuple[dict[str, Any], dict[str, str]]:
    """`vars` from configuration (and secret) literals, and the renames that make a value Chaos
    Toolkit reads from the environment variable KEY read from KEY here too: `${name}` ->
    `${KEY}` (ours look `${KEY}` up in --var, then the environment; a default goes to vars)."""
    found: dict[str, Any] = {}
    renames: dict[str, str] = {}
    entries = [(f"configuration.{k}", k, v) for k, v in config.items()]
    entries += [(f"secrets.{scope}.{k}", k, v) for scope, values in secrets.items()
                if isinstance(values, Mapping) for k, v in values.items()]
    for path, key, value in entries:
        if isinstance(value, Mapping):
            env = value.get("key")
            if value.get("type") != "env" or not isinstance(env, str):
                notes.append(f"{path} ({value.get('type')}) has no native equivalent: pass "
                             f"--var {key}=VALUE")
                continue
            renames[key] = env
            if "default" in value:
                found[env] = value["default"]
            notes.append(f"{path} is the environment variable {env}: written as ${{{env}}} "
                         f"(export {env}, or pass --var {env}=VALUE)")
        elif isinstance(value, str | int | float | bool):
            found[key] = value
    return found, renames


def _renamed(value: Any, renames: Mapping[str, str]) -> Any:
    if not renames:
        return value
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: "${" + renames.get(m.group(0)[2:-1], m.group(0)[2:-1])
                            + "}", value)
    if isinstance(value, dict):
        return {k: _renamed(v, renames) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, renames) for v in value]
    return value


def _probes(doc: Mapping[str, Any], skip: Callable[[str, Mapping[str, Any], str], None],
            origin: Callable[[str, str, Mapping[str, Any]], None],
            notes: list[str]) -> list[dict[str, Any]]:
    probes, names = [], set()
    hyp = doc.get("steady-state-hypothesis") or {}
    for i, probe in enumerate(hyp.get("probes") or []):
        path = f"steady-state-hypothesis.probes[{i}]"
        try:
            converted = _probe(probe, notes)
        except Unconvertible as exc:
            skip(path, probe, str(exc))
            continue
        name = PROBE_NAME.sub("-", str(probe.get("name") or f"probe-{i}")).strip("-")[:60]
        while name in names:
            name += "-2"
        names.add(name)
        probes.append({"name": name, **converted})
        origin("hypothesis.probes", path, probe)
    return probes


def _probe(probe: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    provider = probe.get("provider") or {}
    tolerance = probe.get("tolerance")
    kind = provider.get("type")
    status = isinstance(tolerance, int) and not isinstance(tolerance, bool)
    timeout = {"timeout": f"{provider['timeout']}s"} if isinstance(
        provider.get("timeout"), int | float) else {}
    if kind == "http":
        http: dict[str, Any] = {"url": provider.get("url"), **timeout}
        if provider.get("method", "GET") != "GET":
            http["method"] = provider["method"]
        if provider.get("headers"):
            http["headers"] = {str(k): str(v) for k, v in provider["headers"].items()}
        if status or (isinstance(tolerance, list) and tolerance and all(
                isinstance(t, int) for t in tolerance)):
            http["status"] = tolerance if isinstance(tolerance, list) else [tolerance]
        elif (pattern := _regex_on(tolerance, "body")) is not None:
            http["expect_body"] = pattern
        else:
            raise Unconvertible(f"tolerance {tolerance!r} on an http probe: ours check the "
                                "status code or a regular expression on the body")
        return {"http": http}
    if kind == "process":
        exec_: dict[str, Any] = {
            "run": [str(provider.get("path")), *_argv(provider.get("arguments"))], **timeout}
        if status:
            exec_["exit_code"] = tolerance
        elif (pattern := _regex_on(tolerance, "stdout")) is not None:
            exec_["stdout"] = pattern
        else:
            raise Unconvertible(f"tolerance {tolerance!r} on a process probe: ours check the "
                                "exit code or a regular expression on stdout")
        return {"exec": exec_}
    if kind == "python":
        return probe_of(provider, tolerance, notes)
    raise Unconvertible(f"a {kind} probe has no native equivalent (ours: http, tcp, exec, "
                        "process, pods, deployment)")


def _regex_on(tolerance: Any, target: str) -> str | None:
    if isinstance(tolerance, Mapping) and tolerance.get("type") == "regex" and \
            tolerance.get("target") == target:
        return str(tolerance.get("pattern"))
    return None


def _argv(arguments: Any) -> list[str]:
    if arguments is None:
        return []
    if isinstance(arguments, str):
        if SHELL.search(VARIABLE.sub("", arguments)):
            raise Unconvertible("its arguments need a shell; ours run argv lists, never a shell")
        return shlex.split(arguments)
    if isinstance(arguments, Mapping):
        return [str(p) for kv in arguments.items() for p in kv if p not in (None, "")]
    return [str(a) for a in arguments if a not in (None, "")]


def _faults(doc: Mapping[str, Any], skip: Callable[[str, Mapping[str, Any], str], None],
            origin: Callable[[str, str, Mapping[str, Any]], None],
            notes: list[str]) -> list[dict[str, Any]]:
    faults: list[dict[str, Any]] = []
    at = 0.0
    for i, activity in enumerate(doc.get("method") or []):
        path = f"method[{i}]"
        pauses = activity.get("pauses") or {}
        at += _pause(doc, f"{path}.pauses.before", pauses.get("before"), notes)
        try:
            fault = fault_of(activity, notes)
        except Unconvertible as exc:
            skip(path, activity, str(exc))
        else:
            name = PROBE_NAME.sub("-", str(activity.get("name") or f"fault-{i}")).strip("-")
            faults.append({"name": name[:60], **fault, **({"start": f"{at:g}s"} if at else {})})
            origin("faults", path, activity)
        at += _pause(doc, f"{path}.pauses.after", pauses.get("after"), notes)
    return faults


def _pause(doc: Mapping[str, Any], path: str, value: Any, notes: list[str]) -> float:
    """A pause in seconds; `${name}` is read from a literal configuration value. One we cannot
    know (from the environment) counts as 0 and is named: later faults start earlier."""
    if isinstance(value, str) and (whole := re.fullmatch(r"\$\{([^}]+)\}", value.strip())):
        configured = (doc.get("configuration") or {}).get(whole[1])
        with contextlib.suppress(TypeError, ValueError):
            if isinstance(configured, int | float | str) and not isinstance(configured, bool):
                return max(0.0, float(configured))
    if value is not None and not isinstance(value, bool) and isinstance(value, int | float):
        return max(0.0, float(value))
    if value is not None:
        notes.append(f"{path} is {value!r}, not a number of seconds we can know here: counted "
                     "as 0s; adjust the `start` of the faults after it")
    return 0.0

