"""Reports from real journals stay readable where people read them: JUnit a CI tool can parse
(an ISO 8601 `timestamp`, no character XML 1.0 forbids), Markdown tables a `|` in a Chaos
Toolkit probe name does not split, and `chaos report` naming the file - never an internal
error - when a journal is missing, damaged or in Chaos Toolkit's format."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_chaos

CTK = {
    "title": "Pipes | in names", "description": "a probe name with a pipe, failing",
    "steady-state-hypothesis": {"title": "ok", "probes": [
        {"type": "probe", "name": "false|fails", "tolerance": 0,
         "provider": {"type": "process", "path": "false"}}]},
    "method": [{"type": "action", "name": "nothing", "provider": {"type": "process",
                                                                  "path": "true"}}],
}
ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")  # the JUnit schema's pattern


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ctk")
    (directory / "pipes.json").write_text(json.dumps(CTK))
    path = directory / "journal.json"
    ctk_journal = directory / "ctk-journal.json"
    result = run_chaos("run", str(directory / "pipes.json"), "--journal", str(path), "-q",
                       "--runs-dir", str(directory / "runs"), timeout=120)
    assert result.returncode == 3, result.stdout + result.stderr  # steady state not met
    result = run_chaos("run", str(directory / "pipes.json"), "--journal", str(ctk_journal),
                       "--journal-format", "ctk", "-q", "--runs-dir", str(directory / "runs"),
                       timeout=120)
    assert result.returncode == 3, result.stdout + result.stderr
    return path


def _edited(journal: Path, target: Path, **changes: Any) -> Path:
    data = json.loads(journal.read_text())
    data.update(changes)
    target.write_text(json.dumps(data))
    return target


def test_junit_timestamps_are_iso_8601_and_odd_characters_keep_it_parseable(
        journal: Path, tmp_path: Path) -> None:
    data = json.loads(journal.read_text())
    odd = _edited(journal, tmp_path / "odd.json",
                  reason="\x1b[31mred\x1b[0m output \x00 and a form feed \x0c")
    result = run_chaos("report", str(journal), str(odd), "--format", "junit", timeout=60)
    assert result.returncode == 0, result.stderr
    root = ET.fromstring(result.stdout.encode())  # a CI tool's parser: one bad byte fails all
    suites = root.findall("testsuite")
    assert len(suites) == 2
    for suite in suites:
        assert ISO_8601.fullmatch(suite.get("timestamp", "")), suite.get("timestamp")
    from datetime import UTC, datetime
    assert suites[0].get("timestamp") == datetime.fromtimestamp(
        data["started"], UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert "red" in (suites[1].find("testcase/failure").text or "")  # type: ignore[union-attr]


def _table_rows(markdown: str, header: str) -> list[str]:
    lines = markdown.splitlines()
    start = lines.index(header)
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def _cells(row: str) -> int:
    return len(re.findall(r"(?<!\\)\|", row)) - 1


def test_a_pipe_in_a_check_name_does_not_split_markdown_tables(journal: Path) -> None:
    for fmt, header in (("postmortem", "| phase | check | status | measured | events |"),
                        ("markdown", "| phase | check | status | measured | events | why |")):
        result = run_chaos("report", str(journal), "--format", fmt, timeout=60)
        assert result.returncode == 0, result.stderr
        rows = _table_rows(result.stdout, header)
        assert rows and all(_cells(row) == _cells(header) for row in rows), rows


def test_report_names_a_missing_or_damaged_journal_of_a_game_day(
        journal: Path, tmp_path: Path) -> None:
    day = tmp_path / "day"
    (day / "01-pipes").mkdir(parents=True)
    shutil.copy(journal, day / "01-pipes/journal.json")
    (day / "gameday.json").write_text(json.dumps({
        "schema": "chaos.gameday/v1", "gameday": "20261127T000000-abcdef", "title": "Day",
        "owners": [], "experiments": [
            {"index": 1, "file": "pipes.json", "weight": 1, "status": "done",
             "journal": "01-pipes/journal.json"},
            {"index": 2, "file": "gone.json", "weight": 1, "status": "done",
             "journal": "02-gone/journal.json"}]}))
    result = run_chaos("report", str(day / "gameday.json"), timeout=60)
    assert result.returncode == 2
    assert f"{day / '02-gone/journal.json'}: cannot read a journal" in result.stderr
    assert "internal error" not in result.stderr

    damaged = _edited(journal, tmp_path / "damaged.json", experiment=None)
    result = run_chaos("report", str(damaged), "--format", "junit", timeout=60)
    assert result.returncode == 2 and f"{damaged} is a damaged chaos journal" in result.stderr
    assert "internal error" not in result.stderr


def test_report_explains_a_chaos_toolkit_journal(journal: Path) -> None:
    ctk_journal = journal.parent / "ctk-journal.json"
    result = run_chaos("report", str(ctk_journal), timeout=60)
    assert result.returncode == 2
    assert f"{ctk_journal} is a Chaos Toolkit journal" in result.stderr
    assert "RUNS_DIR/RUN_ID/journal.json" in result.stderr


def test_output_paths_are_created_or_refused_with_a_reason(journal: Path, tmp_path: Path) -> None:
    nested = tmp_path / "reports/ci/chaos.xml"  # CI: the directory does not exist yet
    result = run_chaos("report", str(journal), "--format", "junit", "-o", str(nested),
                       timeout=60)
    assert result.returncode == 0, result.stderr
    ET.parse(nested)

    a_file = tmp_path / "report.html"
    a_file.write_text("")
    result = run_chaos("report", str(journal), "--format", "all", "-o", str(a_file), timeout=60)
    assert result.returncode == 2 and f"{a_file} is a file" in result.stderr
    result = run_chaos("report", str(journal), "--format", "junit", "-o", str(tmp_path),
                       timeout=60)
    assert result.returncode == 2 and f"cannot write {tmp_path}" in result.stderr
    assert "internal error" not in result.stderr
