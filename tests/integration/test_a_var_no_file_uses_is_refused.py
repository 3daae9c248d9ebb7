"""`--var prot=1234` (a typo of `port`) used to be ignored silently: the experiment ran with its
default port. A --var that no given file refers to (as ${NAME}) or declares (under `vars:`) is
refused with exit 2 and the closest name used, before anything starts. A game day hands its
vars to every experiment, so a var any one of them uses is fine."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from tests.conftest import ROOT, run_chaos, unique_marker


def journals_under(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in directory.rglob("journal.json")]

QUICKSTART = "experiments/quickstart.yaml"
OTHER = """\
title: Uses a var of its own
vars: {declared_only: x}
faults:
  - type: process.suspend
    target: {process: {name: "${worker:-nginx}"}}
    duration: 1s
"""


def test_run_and_validate_refuse_a_misspelt_var(tmp_path: Path, state_dir: Path) -> None:
    runs = tmp_path / "runs"
    for command in (["run", "--runs-dir", str(runs)], ["run", "--dry-run"], ["validate"]):
        result = run_chaos(*command, QUICKSTART, "--var", "prot=1234", timeout=60)
        assert result.returncode == 2, (command, result.stdout + result.stderr)
        assert (f"--var prot: {QUICKSTART} never uses ${{prot}}; did you mean port?"
                in result.stderr), result.stderr
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert not runs.exists()  # refused before anything ran: no journal
    assert not (state_dir / "ledger").exists() or not any((state_dir / "ledger").iterdir())


def test_a_var_used_or_declared_by_any_given_file_is_accepted(tmp_path: Path,
                                                              state_dir: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(OTHER)
    for var in ("port=18123", "worker=nginx", "declared_only=y"):
        result = run_chaos("validate", QUICKSTART, str(other), "--var", var, timeout=60)
        assert result.returncode == 0, (var, result.stdout + result.stderr)
    both = run_chaos("validate", QUICKSTART, str(other), "--var", "wokrer=nginx", timeout=60)
    assert both.returncode == 2, both.stdout + both.stderr
    assert (f"--var wokrer: none of the 2 files ({QUICKSTART}, {other}) uses ${{wokrer}}; "
            "did you mean worker?") in both.stderr


def test_a_game_day_accepts_a_var_one_experiment_uses_and_refuses_a_typo(
        tmp_path: Path, state_dir: Path) -> None:
    (tmp_path / "quickstart.yaml").write_text((ROOT / QUICKSTART).read_text())
    (tmp_path / "other.yaml").write_text(OTHER)
    day = tmp_path / "day.yaml"
    day.write_text("title: Two experiments\nexperiments: [quickstart.yaml, other.yaml]\n")
    assert run_chaos("validate", str(day), "--var", "worker=nginx").returncode == 0
    out = tmp_path / "out"
    for command in (["validate"], ["gameday", "run", "--out", str(out)]):
        result = run_chaos(*command, str(day), "--var", "prot=1234", timeout=60)
        assert result.returncode == 2, (command, result.stdout + result.stderr)
        assert "--var prot: " in result.stderr and "did you mean port?" in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_a_game_day_runs_experiments_that_use_only_some_of_its_vars(
        tmp_path: Path, state_dir: Path, spawn_sleepers: Callable[..., list[psutil.Process]],
) -> None:
    """Each experiment gets the game-day vars it uses: `pid` goes to the one that suspends the
    sleeper, `marker` (from --var) to the one that probes it; neither is refused."""
    marker = unique_marker()
    (sleeper,) = spawn_sleepers(1, marker)
    (tmp_path / "suspend.yaml").write_text(
        "title: Suspends the pid\nfaults:\n  - type: process.suspend\n"
        "    target: {process: {pid: \"${pid}\"}}\n    duration: 1s\n")
    (tmp_path / "probe.yaml").write_text(
        "title: Probes the marker\nhypothesis:\n"
        "  probes: [{name: alive, process: {cmdline: \"${marker}\"}}]\n"
        "  checks: [alive >= 99%]\n  before: {window: 300ms, every: 100ms}\n")
    day = tmp_path / "day.yaml"
    day.write_text(f"title: Vars for some\nvars: {{pid: \"{sleeper.pid}\"}}\n"
                   "experiments: [suspend.yaml, probe.yaml]\nstop_on: never\n")
    result = run_chaos("gameday", "run", str(day), "--out", str(tmp_path / "out"),
                       "--var", f"marker={marker}", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    found = journals_under(tmp_path / "out")
    assert sorted(j["experiment"]["title"] for j in found) == ["Probes the marker",
                                                               "Suspends the pid"]
    assert all(j["exit_code"] == 0 for j in found)
    assert any(j["injections"] and j["injections"][0]["outcome"] == "reverted" for j in found)
