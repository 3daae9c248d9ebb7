"""Chaos Toolkit experiments -> native experiment documents, where an equivalent exists.

What converts: http and process hypothesis probes (-> our probes, each with a `>= 100%` check,
since Chaos Toolkit expects every answer within tolerance), our faults called through
chaos.ctk.actions, process-kill style actions (`pkill`, `killall`, `kill`) and the common
chaostoolkit-kubernetes actions (pod termination, scaling, cordon, drain). Configuration
literals become `vars` (`${name}` means the same in both formats). Everything else - python
probes, arbitrary actions, rollbacks that our faults make unnecessary - is listed with its
file:line and the reason, never silently dropped. The result is checked by the native loader.

Timing: Chaos Toolkit's method is sequential, but its fault actions return at once and the
fault lasts on; so a converted fault starts at the sum of the pauses before it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos.ctk.document import CtkExperiment
from chaos.ctk.mapping import Unconvertible, fault_of

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


def convert(exp: CtkExperiment) -> Conversion:
    doc = exp.document
    out: dict[str, Any] = {"title": exp.title}
    if exp.description:
        out["description"] = exp.description
    if exp.tags:
        out["tags"] = exp.tags
    result = Conversion(out)
    variables = _vars(doc.get("configuration") or {}, result.notes)
    if variables:
        out["vars"] = variables

    def skip(path: str, activity: Mapping[str, Any], why: str) -> None:
        name = str(activity.get("name") or activity.get("ref") or "?")
        result.skipped.append(Skipped(exp.where(path), path, name, why))

    probes = _probes(doc, skip)
    if probes:
        out["hypothesis"] = {"probes": probes,
                             "checks": [f"{p['name']} >= 100%" for p in probes],
                             "before": {"window": "1s", "every": "250ms"},
                             "after": {"settle": "0s", "window": "1s", "every": "250ms"}}
    faults = _faults(doc, skip, result.notes)
    if faults:
        out["faults"] = faults
    for i, activity in enumerate(doc.get("rollbacks") or []):
        provider = activity.get("provider") or {}
        if provider.get("module") == "chaos.ctk.actions":
            continue  # our faults revert themselves
        skip(f"rollbacks[{i}]", activity, "rollbacks are not part of our format: every fault "
                                          "reverts itself at its end, on failure and on signals")
    return result


def _vars(config: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            if value.get("type") == "env" and "default" in value:
                found[key] = value["default"]
            notes.append(f"configuration.{key} came from ${value.get('key', '?')}: pass "
                         f"--var {key}=VALUE or export {key}")
        elif isinstance(value, str | int | float | bool):
            found[key] = value
    return found


def _probes(doc: Mapping[str, Any], skip: Callable[[str, Mapping[str, Any], str], None]
            ) -> list[dict[str, Any]]:
    probes, names = [], set()
    hyp = doc.get("steady-state-hypothesis") or {}
    for i, probe in enumerate(hyp.get("probes") or []):
        path = f"steady-state-hypothesis.probes[{i}]"
        try:
            converted = _probe(probe)
        except Unconvertible as exc:
            skip(path, probe, str(exc))
            continue
        name = PROBE_NAME.sub("-", str(probe.get("name") or f"probe-{i}")).strip("-")[:60]
        while name in names:
            name += "-2"
        names.add(name)
        probes.append({"name": name, **converted})
    return probes


def _probe(probe: Mapping[str, Any]) -> dict[str, Any]:
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
    raise Unconvertible(f"a {kind} probe has no native equivalent (ours: http, tcp, exec, "
                        "process)")


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
            notes: list[str]) -> list[dict[str, Any]]:
    faults: list[dict[str, Any]] = []
    at = 0.0
    for i, activity in enumerate(doc.get("method") or []):
        path = f"method[{i}]"
        pauses = activity.get("pauses") or {}
        at += _seconds(pauses.get("before"))
        try:
            fault = fault_of(activity, notes)
        except Unconvertible as exc:
            skip(path, activity, str(exc))
        else:
            name = PROBE_NAME.sub("-", str(activity.get("name") or f"fault-{i}")).strip("-")
            faults.append({"name": name[:60], **fault, **({"start": f"{at:g}s"} if at else {})})
        at += _seconds(pauses.get("after"))
    return faults


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
