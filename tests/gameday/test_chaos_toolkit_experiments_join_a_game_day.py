"""A Chaos Toolkit experiment listed in a game day runs like any other (through `chaos run`),
and its mistakes are found before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_chaos
from tests.gameday.conftest import NO_PROXY, write_gameday

CTK = {
    "version": "1.0.0", "title": "true keeps returning 0", "description": "a trivial one",
    "steady-state-hypothesis": {"title": "true runs", "probes": [
        {"type": "probe", "name": "true", "tolerance": 0,
         "provider": {"type": "process", "path": "true"}}]},
    "method": [{"type": "action", "name": "pause", "provider": {
        "type": "process", "path": "sleep", "arguments": "0.1"}}],
    "rollbacks": [],
}


def test_a_chaos_toolkit_experiment_runs_in_a_game_day(tmp_path: Path) -> None:
    (tmp_path / "ctk.json").write_text(json.dumps(CTK))
    path = write_gameday(tmp_path, "title: Mixed formats\nexperiments: [ctk.json]\n")
    env = {"CHAOS_STATE_DIR": str(tmp_path / "state"), **NO_PROXY}
    result = run_chaos("gameday", "run", str(path), "--out", str(tmp_path / "out"), env=env,
                       timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    (directory,) = (tmp_path / "out").iterdir()
    (item,) = json.loads((directory / "gameday.json").read_text())["experiments"]
    assert item["verdict"] == "held" and item["title"] == CTK["title"]


def test_a_broken_chaos_toolkit_experiment_stops_the_game_day_before_it_starts(
        tmp_path: Path) -> None:
    broken = {**CTK, "method": [{"type": "action", "name": "pause"}]}  # no provider
    (tmp_path / "ctk.json").write_text(json.dumps(broken))
    path = write_gameday(tmp_path, "title: Mixed formats\nexperiments: [ctk.json]\n")
    result = run_chaos("gameday", "run", str(path), "--out", str(tmp_path / "out"), timeout=60)
    assert result.returncode == 2 and not (tmp_path / "out").exists()
    assert "experiment ctk.json is invalid" in result.stderr and "method[0]" in result.stderr
