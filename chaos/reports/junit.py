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
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from chaos.records import CheckVerdict, FaultSummary, Injection, RunRecord
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


def _suite(journal: RunRecord, names: Mapping[str, str]) -> ET.Element:
    exp = journal.experiment
    source = names.get(exp.source or "") or shown(exp.source or "")
    duration = float(journal.duration or 0)
    suite = ET.Element("testsuite", name=str(exp.title), file=source,
                       timestamp=_timestamp(journal.started), time=f"{duration:.3f}")
    verdict = ET.SubElement(suite, "testcase", classname=source, name="verdict",
                            time=f"{duration:.3f}")
    counts = Counter(tests=1)
    if journal.exit_code != 0:
        tag = "error" if journal.exit_code in (2, 5) else "failure"
        node = ET.SubElement(verdict, tag, message=f"{journal.verdict}: {journal.reason}",
                             type=str(journal.verdict))
        node.text = journal.reason
        counts[f"{tag}s"] += 1
    for phase, data in journal.phases.items():
        for guardrail in data.guardrails:
            _guardrail(ET.SubElement(suite, "testcase", classname=f"{source}.{phase}",
                                     name=f"guardrail {guardrail.check}"), guardrail, counts)
        for check in data.checks:
            _check(ET.SubElement(suite, "testcase", classname=f"{source}.{phase}",
                                 name=str(check.check)), check, counts)
    for fault, kind, injections in _faults(exp.faults, journal.injections):
        _fault(ET.SubElement(suite, "testcase", classname=f"{source}.faults",
                             name=f"{fault} ({kind})" if kind else fault), injections, counts)
    for attr in ("tests", "failures", "errors", "skipped"):
        suite.set(attr, str(counts[attr]))
    return suite


def _guardrail(case: ET.Element, guardrail: CheckVerdict, counts: Counter[str]) -> None:
    counts["tests"] += 1
    measured = guardrail.measured or "n/a"
    if guardrail.breached:
        counts["failures"] += 1
        ET.SubElement(case, "failure", type="guardrail_breached",
                      message=f"guardrail breached: {guardrail.check} (measured {measured})")
    elif guardrail.measured is None:
        counts["skipped"] += 1
        ET.SubElement(case, "skipped", message="never measured")
    else:
        ET.SubElement(case, "system-out").text = f"held; closest: measured {measured}"


def _check(case: ET.Element, check: CheckVerdict, counts: Counter[str]) -> None:
    counts["tests"] += 1
    if check.status in FAILING:
        counts["failures"] += 1
        ET.SubElement(case, "failure", type=str(check.status),
                      message=f"{check.status}: measured {check.measured or 'n/a'} over "
                              f"{check.events} events" + (
                                  f": {check.reason}" if check.reason else ""))
    elif check.status == "ERROR":
        counts["errors"] += 1
        ET.SubElement(case, "error", message=check.reason or "error")


def _fault(case: ET.Element, injections: list[Injection], counts: Counter[str]) -> None:
    counts["tests"] += 1
    failed = [i for i in injections if i.outcome == "failed"]
    if failed:
        counts["errors"] += 1
        ET.SubElement(case, "error", type="revert_failed",
                      message="; ".join(f"{i.target}: {i.error or ''}" for i in failed))
    elif not injections:
        counts["skipped"] += 1
        ET.SubElement(case, "skipped", message="nothing was injected")
    if injections:  # which targets: PIDs and pod names belong here, not in the name
        ET.SubElement(case, "system-out").text = "\n".join(
            f"{i.target}: {i.outcome}" + (f" - {i.error}" if i.error else "")
            for i in injections)


def _faults(declared: Sequence[FaultSummary], injections: Sequence[Injection],
            ) -> list[tuple[str, str, list[Injection]]]:
    """(fault name, type, its injections) for every declared fault, in file order, then any
    fault only the injections name (a Chaos Toolkit run)."""
    found: dict[str, tuple[str, list[Injection]]] = {
        str(f.name): (str(f.type or ""), []) for f in declared}
    for inj in injections:
        found.setdefault(str(inj.fault), (str(inj.type or ""), []))[1].append(inj)
    return [(name, kind, injs) for name, (kind, injs) in found.items()]


def render_collection(collection: Collection) -> str:
    """A game day's (or `chaos report`'s) journals, experiments named as the game day does."""
    names = {str(e.journal.experiment.source or ""): e.label
             for e in collection.entries if e.journal is not None and collection.gameday}
    return render(collection.records, collection.title,
                  [(e.label, e.skipped) for e in collection.entries if e.journal is None], names)


def _skipped(label: str, reason: str) -> ET.Element:
    """An experiment a game day did not run (it stopped early): skipped, not passed."""
    suite = ET.Element("testsuite", name=label, file=label, tests="1", failures="0", errors="0",
                       skipped="1", time="0.000")
    case = ET.SubElement(suite, "testcase", classname=label, name="verdict", time="0.000")
    ET.SubElement(case, "skipped", message=reason)
    return suite


def render(journals: Iterable[RunRecord | Mapping[str, Any]], name: str = "chaos",
           skipped: Iterable[tuple[str, str]] = (), names: Mapping[str, str] | None = None,
           ) -> str:
    """`skipped`: (experiment file, why) of experiments that did not run; `names`: the stable
    name of an experiment file by its journal's `source` (a game day's, as written in it)."""
    root = ET.Element("testsuites", name=name)
    for journal in journals:
        root.append(_suite(RunRecord.of(journal), names or {}))
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

