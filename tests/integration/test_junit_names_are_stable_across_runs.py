"""CI tools key a test's history on (classname, name). Two runs of the same experiment against
different processes (different PIDs) must give the same names, built from the experiment file
(relative, not the absolute path of one CI workspace) and the fault and check names. The XML
must also pass a strict reading of the JUnit schema."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import psutil

from tests.conftest import run_chaos, unique_marker
from tests.support.junit import cases

EXPERIMENT = """\
title: A marked sleeper is frozen and comes back
hypothesis:
  probes: [{{name: alive, process: {{cmdline: "{marker}"}}}}]
  checks: [alive >= 50%]
  before: {{window: 600ms, every: 100ms}}
  during: {{every: 100ms, abort: [alive < 1%]}}
  after: {{settle: 200ms, window: 600ms, every: 100ms}}
faults:
  - name: freeze-sleeper
    type: process.suspend
    target: {{process: {{cmdline: "{marker}"}}}}
    start: 200ms
    duration: 500ms
limits: {{max_duration: 1m, max_targets: 1}}
"""


def _run_against_a_new_sleeper(tmp_path: Path, marker: str, junit: str,
                               spawn: Callable[..., list[psutil.Process]]) -> int:
    (sleeper,) = spawn(1, marker)
    result = run_chaos("run", "experiments/frozen.yaml", "--junit", junit, "--runs-dir", "runs",
                       cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"pid {sleeper.pid}" in result.stdout  # the summary names the process it hit
    return sleeper.pid


def test_two_runs_against_different_pids_give_the_same_test_names(
        tmp_path: Path, state_dir: Path,
        spawn_sleepers: Callable[..., list[psutil.Process]]) -> None:
    marker = unique_marker()
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "frozen.yaml").write_text(EXPERIMENT.format(marker=marker))
    first = _run_against_a_new_sleeper(tmp_path, marker, "first.xml", spawn_sleepers)
    for proc in psutil.Process().children():  # the first sleeper goes; a new pid comes
        if proc.pid == first:
            proc.kill()
            proc.wait(10)
    second = _run_against_a_new_sleeper(tmp_path, marker, "second.xml", spawn_sleepers)
    assert first != second
    one, two = cases(tmp_path / "first.xml"), cases(tmp_path / "second.xml")
    assert [c[:2] for c in one] == [c[:2] for c in two]
    names = [c[:2] for c in one]
    assert ("experiments/frozen.yaml.faults", "freeze-sleeper (process.suspend)") in names
    assert ("experiments/frozen.yaml", "verdict") in names
    assert ("experiments/frozen.yaml.during", "guardrail alive < 1%") in names
    for classname, name in names:
        assert not classname.startswith("/") and str(tmp_path) not in classname
        assert not re.search(r"\bpid\b|\d{3,}", name), name
    assert all(outcome == "passed" for *_, outcome in one), one
    # the targets hit are still in the report, in the fault's output
    text = (tmp_path / "second.xml").read_text()
    assert f"pid {second}" in text and f"pid {first}" not in text


def test_a_game_day_names_experiments_as_its_file_does(
        tmp_path: Path, state_dir: Path,
        spawn_sleepers: Callable[..., list[psutil.Process]]) -> None:
    marker = unique_marker()
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "frozen.yaml").write_text(EXPERIMENT.format(marker=marker))
    (tmp_path / "days").mkdir()
    (tmp_path / "days" / "day.yaml").write_text(
        "title: Day\nexperiments: [../experiments/frozen.yaml]\n"
        "reports: {formats: [junit]}\n")
    spawn_sleepers(1, marker)
    result = run_chaos("gameday", "run", str(tmp_path / "days" / "day.yaml"), "--out",
                       str(tmp_path / "out"), timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    (junit,) = (tmp_path / "out").rglob("junit.xml")
    classnames = {c for c, _, _ in cases(junit)}
    assert classnames == {"../experiments/frozen.yaml", "../experiments/frozen.yaml.before",
                          "../experiments/frozen.yaml.during",
                          "../experiments/frozen.yaml.after",
                          "../experiments/frozen.yaml.faults"}, classnames

