"""Input files are read bounded and only when they are regular files: a FIFO handed to
`chaos validate` is refused at once instead of blocking forever, and a huge file (an experiment,
a game day, or a JSON export lying in an experiments directory) is refused or skipped from its
size, never read whole into memory first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, chaos_cmd, run_chaos

VALID = """\
title: t
faults:
  - type: process.suspend
    target: {process: {name: nothing-here}}
    duration: 1s
"""


@pytest.mark.parametrize("name", ["experiment.yaml", "experiment.json", "gameday.yaml"])
def test_a_named_pipe_is_refused_not_waited_on(tmp_path: Path, state_dir: Path,
                                               name: str) -> None:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    # nobody ever writes to the pipe: reading it would block until the timeout below
    result = run_chaos("validate", str(fifo), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{fifo}: 1 problem" in result.stderr
    assert "is a named pipe (FIFO), not a regular file" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_a_character_device_is_refused_for_what_it_is(state_dir: Path) -> None:
    result = run_chaos("validate", "/dev/zero", timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "/dev/zero: 1 problem" in result.stderr and "character device" in result.stderr


def _peak_rss_kib(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run the CLI under a fresh parent whose only child it is: ru_maxrss of the children is
    then the CLI's own peak resident set, read from the kernel."""
    code = ("import resource, subprocess, sys\n"
            "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr)\n"
            "print(f'PEAK {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}')\n"
            "sys.exit(r.returncode)\n")
    result = subprocess.run([sys.executable, "-c", code, *chaos_cmd(*args)], cwd=cwd,
                            capture_output=True, text=True, timeout=300, check=False)
    peak = int(result.stdout.rsplit("PEAK ", 1)[1])
    return result, peak


def test_a_huge_json_in_a_directory_is_skipped_from_its_size(tmp_path: Path,
                                                            state_dir: Path) -> None:
    directory = tmp_path / "experiments"
    directory.mkdir()
    (directory / "a.yaml").write_text(VALID)
    with (directory / "export.json").open("wb") as file:
        file.truncate(250 * 1024 * 1024)  # sparse: costs no disk, 250 MB to whoever reads it
    result, peak = _peak_rss_kib("validate", str(directory), cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{directory / 'a.yaml'}: ok" in result.stdout
    assert (f"note: {directory / 'export.json'}: skipped, larger than 2048 KiB"
            in result.stderr)
    # the 250 MB were never read (reading them took ~460 MB before); the CLI alone is ~60 MB
    assert peak < 200 * 1024, f"peak RSS {peak} KiB"


def test_a_huge_experiment_named_on_the_command_line_is_refused_unread(
        tmp_path: Path, state_dir: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as file:
        file.truncate(250 * 1024 * 1024)
    result, peak = _peak_rss_kib("validate", str(path), cwd=ROOT)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{path}: 1 problem" in result.stderr and "larger than 2048 KiB" in result.stderr
    assert peak < 200 * 1024, f"peak RSS {peak} KiB"


def test_report_refuses_a_named_pipe_given_as_a_journal(tmp_path: Path, state_dir: Path) -> None:
    fifo = tmp_path / "journal.json"
    os.mkfifo(fifo)
    result = run_chaos("report", str(fifo), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{fifo}: cannot read a journal: not a regular file" in result.stderr
