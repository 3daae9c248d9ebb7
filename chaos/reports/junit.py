"""JUnit XML from journals: one testsuite per experiment, one testcase per check and phase,
plus one per injection (a failed revert is a failure CI must see).

CI tools parse this strictly: `timestamp` is the schema's ISO 8601 date-time (seconds, no
zone; UTC here, so a report rendered anywhere is the same), not epoch seconds, and characters
XML 1.0 cannot carry (ANSI escapes in an error message, say) are replaced, because one of them
makes the whole file unreadable to the CI tool.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

FAILING = {"FAIL", "NO_DATA", "INVALID"}
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _timestamp(epoch: Any) -> str:
    try:
        return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def _suite(journal: Mapping[str, Any]) -> ET.Element:
    exp = {**journal["experiment"], "source": str(journal["experiment"].get("source") or "")}
    duration = float(journal.get("duration") or 0)
    suite = ET.Element("testsuite", name=exp["title"], file=exp["source"],
                       timestamp=_timestamp(journal.get("started")),
                       time=f"{duration:.3f}")
    cases = failures = errors = 0
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
    for inj in journal.get("injections", []):
        cases += 1
        case = ET.SubElement(suite, "testcase", classname=f"{exp['source']}.faults",
                             name=f"{inj['fault']} on {inj['target']}")
        if inj["outcome"] == "failed":
            errors += 1
            ET.SubElement(case, "error", type="revert_failed", message=inj.get("error", ""))
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    return suite


def _skipped(label: str, reason: str) -> ET.Element:
    """An experiment a game day did not run (it stopped early): skipped, not passed."""
    suite = ET.Element("testsuite", name=label, file=label, tests="1", failures="0", errors="0",
                       skipped="1", time="0.000")
    case = ET.SubElement(suite, "testcase", classname=label, name="verdict", time="0.000")
    ET.SubElement(case, "skipped", message=reason)
    return suite


def render(journals: Iterable[Mapping[str, Any]], name: str = "chaos",
           skipped: Iterable[tuple[str, str]] = ()) -> str:
    """`skipped`: (experiment file, why) of experiments that did not run."""
    root = ET.Element("testsuites", name=name)
    for journal in journals:
        root.append(_suite(journal))
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

