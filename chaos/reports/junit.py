"""JUnit XML from journals: one testsuite per experiment, one testcase per check and phase,
plus one per fault (a failed revert is a failure CI must see).

CI tools key test history on (classname, name), so both are stable from run to run: built from
the experiment file (relative to the working directory, or as a game day names it), phase,
check text and fault name - never from a PID or a pod name, which go in the testcase's output.

CI tools parse this strictly: `timestamp` is the schema's ISO 8601 date-time (seconds, no
zone; UTC here, so a report rendered anywhere is the same), not epoch seconds, and characters
XML 1.0 cannot carry (ANSI escapes in an error message, say) are replaced, because one of them
makes the whole file unreadable to the CI tool.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from chaos.reports.collection import Collection

FAILING = {"FAIL", "NO_DATA", "INVALID"}
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _timestamp(epoch: Any) -> str:
    try:
        return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def shown(source: str) -> str:
    """An experiment file as a stable name: relative to the working directory when it is
    inside it (an absolute path differs between CI workspaces), else as it is."""
    if not os.path.isabs(source):
        return source
    relative = os.path.relpath(source)
    return source if relative.startswith("..") else relative


def _suite(journal: Mapping[str, Any], names: Mapping[str, str]) -> ET.Element:
    source = str(journal["experiment"].get("source") or "")
    exp = {**journal["experiment"], "source": names.get(source) or shown(source)}
    duration = float(journal.get("duration") or 0)
    suite = ET.Element("testsuite", name=exp["title"], file=exp["source"],
                       timestamp=_timestamp(journal.get("started")),
                       time=f"{duration:.3f}")
    cases = failures = errors = skipped = 0
    verdict = ET.SubElement(suite, "testcase", classname=exp["source"], name="verdict",
                            time=f"{duration:.3f}")
    cases += 1
    if journal["exit_code"] != 0:
        tag = "error" if journal["exit_code"] in (2, 5) else "failure"
        node = ET.SubElement(verdict, tag, message=f"{journal['verdict']}: {journal['reason']}",
                             type=journal["verdict"])
        node.text = journal["reason"]
        failures += tag == "failure"
        errors += tag == "error"
    for phase, data in journal.get("phases", {}).items():
        for guardrail in data.get("guardrails", []):
            cases += 1
            case = ET.SubElement(suite, "testcase", classname=f"{exp['source']}.{phase}",
                                 name=f"guardrail {guardrail['check']}")
            measured = guardrail.get("measured") or "n/a"
            if guardrail.get("breached"):
                failures += 1
                ET.SubElement(case, "failure", type="guardrail_breached",
                              message=f"guardrail breached: {guardrail['check']} "
                                      f"(measured {measured})")
            elif guardrail.get("measured") is None:
                skipped += 1
                ET.SubElement(case, "skipped", message="never measured")
            else:
                ET.SubElement(case, "system-out").text = f"held; closest: measured {measured}"
        for check in data.get("checks", []):
            cases += 1
            case = ET.SubElement(suite, "testcase", classname=f"{exp['source']}.{phase}",
                                 name=check["check"])
            if check["status"] in FAILING:
                failures += 1
                ET.SubElement(case, "failure", type=check["status"],
                              message=f"{check['status']}: measured "
                                      f"{check.get('measured') or 'n/a'} over "
                                      f"{check.get('events')} events" + (
                                          f": {check['reason']}" if check.get("reason")
                                          else ""))
            elif check["status"] == "ERROR":
                errors += 1
                ET.SubElement(case, "error", message=check.get("reason") or "error")
    for fault, kind, injections in _faults(exp.get("faults") or [],
                                           journal.get("injections", [])):
        cases += 1
        case = ET.SubElement(suite, "testcase", classname=f"{exp['source']}.faults",
                             name=f"{fault} ({kind})" if kind else fault)
        failed = [i for i in injections if i.get("outcome") == "failed"]
        if failed:
            errors += 1
            ET.SubElement(case, "error", type="revert_failed",
                          message="; ".join(f"{i.get('target')}: {i.get('error', '')}"
                                            for i in failed))
        elif not injections:
            skipped += 1
            ET.SubElement(case, "skipped", message="nothing was injected")
        if injections:  # which targets: PIDs and pod names belong here, not in the name
            ET.SubElement(case, "system-out").text = "\n".join(
                f"{i.get('target')}: {i.get('outcome')}" + (
                    f" - {i['error']}" if i.get("error") else "") for i in injections)
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    return suite


def _faults(declared: list[Mapping[str, Any]], injections: list[Mapping[str, Any]],
            ) -> list[tuple[str, str, list[Mapping[str, Any]]]]:
    """(fault name, type, its injections) for every declared fault, in file order, then any
    fault only the injections name (a Chaos Toolkit run)."""
    found: dict[str, tuple[str, list[Mapping[str, Any]]]] = {
        str(f.get("name")): (str(f.get("type") or ""), []) for f in declared}
    for inj in injections:
        found.setdefault(str(inj.get("fault")), (str(inj.get("type") or ""), []))[1].append(inj)
    return [(name, kind, injs) for name, (kind, injs) in found.items()]


def render_collection(collection: Collection) -> str:
    """A game day's (or `chaos report`'s) journals, experiments named as the game day does."""
    names = {str(e.journal["experiment"].get("source") or ""): e.label
             for e in collection.entries if e.journal is not None and collection.gameday}
    return render(collection.journals, collection.title,
                  [(e.label, e.skipped) for e in collection.entries if e.journal is None], names)


def _skipped(label: str, reason: str) -> ET.Element:
    """An experiment a game day did not run (it stopped early): skipped, not passed."""
    suite = ET.Element("testsuite", name=label, file=label, tests="1", failures="0", errors="0",
                       skipped="1", time="0.000")
    case = ET.SubElement(suite, "testcase", classname=label, name="verdict", time="0.000")
    ET.SubElement(case, "skipped", message=reason)
    return suite


def render(journals: Iterable[Mapping[str, Any]], name: str = "chaos",
           skipped: Iterable[tuple[str, str]] = (), names: Mapping[str, str] | None = None,
           ) -> str:
    """`skipped`: (experiment file, why) of experiments that did not run; `names`: the stable
    name of an experiment file by its journal's `source` (a game day's, as written in it)."""
    root = ET.Element("testsuites", name=name)
    for journal in journals:
        root.append(_suite(journal, names or {}))
    for label, reason in skipped:
        root.append(_skipped(label, reason))
    for attr in ("tests", "failures", "errors", "skipped"):
        root.set(attr, str(sum(int(s.get(attr, "0")) for s in root)))
    for node in root.iter():
        node.attrib = {k: NOT_XML.sub("\ufffd", v) for k, v in node.attrib.items()}
        if node.text:
            node.text = NOT_XML.sub("\ufffd", node.text)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

