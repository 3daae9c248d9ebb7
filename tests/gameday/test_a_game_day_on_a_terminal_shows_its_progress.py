"""`chaos gameday run` on a real terminal: a status line redrawn under the progress lines
(what runs, for how long, what the done ones gave), verdicts coloured, nothing stale left on
screen; piped, plain lines only."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import psutil

from tests.conftest import ROOT, run_chaos
from tests.gameday.conftest import write_gameday
from tests.support.terminal import SGR, Screen, on_pty


def two_experiments(tmp_path: Path, pid: int) -> Path:
    (tmp_path / "freeze.yaml").write_text(f"""title: a sleeper frozen for 3s
faults:
  - type: process.suspend
    target: {{process: {{pid: {pid}}}}}
    duration: 3s
""")
    (tmp_path / "never-steady.yaml").write_text("""title: nothing answers
hypothesis:
  probes:
    - name: nobody
      tcp: {address: "127.0.0.1:9", timeout: 200ms}
  checks: [nobody >= 99%]
  before: {window: 1s, every: 100ms}
""")
    return write_gameday(tmp_path, f"""
title: Two on a terminal
owners: [team-a]
experiments:
  - "{tmp_path / 'freeze.yaml'}"
  - "{tmp_path / 'never-steady.yaml'}"
""")


def test_status_line_and_coloured_verdicts_on_a_terminal(
        tmp_path: Path, state_dir: Path, sleeper: psutil.Process) -> None:
    path = two_experiments(tmp_path, sleeper.pid)
    run = on_pty([sys.executable, "-m", "chaos", "gameday", "run", str(path), "--out",
                  str(tmp_path / "out")], cwd=str(ROOT), timeout=180)
    assert run.returncode == 3, run.text
    screen = Screen.of(run.output)
    status = [f for f in screen.frames if f.startswith(">> game day ")]
    assert any(re.search(r"running \[1/2\] \S.* \d+s \| 1 to go", f) for f in status), status
    assert any(re.search(r"running \[2/2\] .*done: 1 held", f) for f in status), status
    assert not any(">>" in line for line in screen.lines), screen.text  # nothing stale
    assert b"[1/2] \x1b[32mheld\x1b[0m:" in run.output
    assert b"[2/2] \x1b[31msteady-state-not-met\x1b[0m:" in run.output


def test_no_color_and_the_flag_turn_colour_off_on_a_terminal(
        tmp_path: Path, state_dir: Path, sleeper: psutil.Process) -> None:
    path = two_experiments(tmp_path, sleeper.pid)
    argv = [sys.executable, "-m", "chaos", "gameday", "run", str(path), "--out",
            str(tmp_path / "out")]
    for run in (on_pty(argv, cwd=str(ROOT), env={"NO_COLOR": "1"}, timeout=180),
                on_pty([*argv, "--no-color"], cwd=str(ROOT), timeout=180)):
        assert run.returncode == 3, run.text
        assert b"[1/2] held:" in run.output
        assert b"\x1b[32m" not in run.output and b"\x1b[31m" not in run.output


def test_piped_game_day_lines_are_plain(
        tmp_path: Path, state_dir: Path, sleeper: psutil.Process) -> None:
    path = two_experiments(tmp_path, sleeper.pid)
    result = run_chaos("gameday", "run", str(path), "--out", str(tmp_path / "out"), timeout=180)
    assert result.returncode == 3, result.stdout + result.stderr
    assert not SGR.search((result.stdout + result.stderr).encode())
    assert "\r" not in result.stdout + result.stderr
    assert "[1/2] held:" in result.stdout and "[2/2] steady-state-not-met:" in result.stdout
