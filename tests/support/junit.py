"""JUnit XML read the way CI tools read it: junitparser (what many CI integrations use), plus the
structure of the JUnit schema that Jenkins, GitLab and Surefire enforce, checked strictly:
only its elements and attributes, required attributes present, numbers numeric, counts that
add up. A report that fails here is one some CI tool drops or misreads."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from junitparser import JUnitXml

ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
DECIMAL = re.compile(r"\d+(\.\d+)?")
SUITES_ATTRS = {"name", "tests", "failures", "errors", "skipped", "time", "disabled"}
SUITE_ATTRS = {"name", "tests", "failures", "errors", "skipped", "time", "timestamp", "file",
               "hostname", "id", "package", "disabled"}
CASE_ATTRS = {"name", "classname", "time", "assertions", "status", "file", "line"}
OUTCOMES = {"failure", "error", "skipped"}


def cases(path: Path) -> list[tuple[str, str, str]]:
    """(classname, name, outcome) of every testcase, after checking the file strictly;
    outcome is passed, failure, error or skipped."""
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites", root.tag
    _attrs(root, SUITES_ATTRS, required={"tests", "failures", "errors"})
    found = []
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in root:
        assert suite.tag == "testsuite", suite.tag
        _attrs(suite, SUITE_ATTRS, required={"name", "tests", "failures", "errors"})
        if suite.get("timestamp"):
            assert ISO_8601.fullmatch(suite.get("timestamp", "")), suite.get("timestamp")
        counted = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for case in suite:
            assert case.tag == "testcase", case.tag
            _attrs(case, CASE_ATTRS, required={"name", "classname"})
            outcomes = [child.tag for child in case if child.tag in OUTCOMES]
            assert len(outcomes) <= 1, outcomes
            assert all(c.tag in OUTCOMES | {"system-out", "system-err"} for c in case)
            outcome = outcomes[0] if outcomes else "passed"
            counted["tests"] += 1
            if outcome != "passed":
                counted["failures" if outcome == "failure" else
                        "errors" if outcome == "error" else "skipped"] += 1
            found.append((case.get("classname", ""), case.get("name", ""), outcome))
        for key, value in counted.items():
            assert int(suite.get(key, "0")) == value, (suite.get("name"), key)
            totals[key] += value
    for key, value in totals.items():
        assert int(root.get(key, "0")) == value, key
    # and as junitparser (what CI plugins build on) reads it
    parsed = [(c.classname, c.name) for suite in JUnitXml.fromfile(str(path)) for c in suite]
    assert parsed == [(c, n) for c, n, _ in found]
    return found


def _attrs(node: ET.Element, allowed: set[str], required: set[str]) -> None:
    assert set(node.attrib) <= allowed, (node.tag, set(node.attrib) - allowed)
    assert required <= set(node.attrib), (node.tag, required - set(node.attrib))
    for key in ("tests", "failures", "errors", "skipped"):
        if key in node.attrib:
            assert node.attrib[key].isdigit(), (node.tag, key, node.attrib[key])
    if "time" in node.attrib:
        assert DECIMAL.fullmatch(node.attrib["time"]), (node.tag, node.attrib["time"])
