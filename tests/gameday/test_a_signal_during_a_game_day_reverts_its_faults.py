"""SIGTERM to the scheduler (or SIGINT to `chaos gameday run`) while a parallel group holds two
processes suspended: both are resumed - checked from outside, in /proc - the rest of the game
day does not start, and the exit code says which signal it was. A game day killed outright
(SIGKILL) stops its experiments too: they revert at once, not when their faults would end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import (
    chaos_cmd, is_running, open_injections, process_state, run_chaos, status_injections,
    wait_until)
from tests.gameday.conftest import NO_PROXY, write_gameday


@pytest.mark.parametrize(("command", "sig", "code"), [
    (["gameday", "schedule", "--run-now"], signal.SIGTERM, 143),
    (["gameday", "run"], signal.SIGINT, 130),
])
def test_the_signal_reverts_the_running_experiments_and_stops(
        tmp_path: Path, spawn_sleepers: object, command: list[str], sig: signal.Signals,
        code: int) -> None:
    first, second = spawn_sleepers(2, "gameday-signal-target")  # type: ignore[operator]
    path = write_gameday(tmp_path, f"""
title: Interrupted game day
schedule: {{cron: "0 0 1 1 *", timezone: Europe/Berlin}}   # far away: --run-now starts it
experiments:
  - parallel:
      - {{file: "{{fixtures}}/suspend-sleeper.yaml", vars: {{pid: "{first.pid}"}}}}
      - {{file: "{{fixtures}}/suspend-sleeper.yaml", vars: {{pid: "{second.pid}"}}}}
  - "{{experiments}}/quickstart.yaml"
stop_on: never
""")
    env = {"CHAOS_STATE_DIR": str(tmp_path / "state"), **NO_PROXY}
    proc = subprocess.Popen(chaos_cmd(*command, str(path), "--out", str(tmp_path / "out")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})
    try:
        frozen = wait_until(lambda: process_state(first.pid) == "T" and
                            process_state(second.pid) == "T", timeout=30)
        assert frozen is not None, "the faults were never injected"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == code, out + err
    assert is_running(first.pid) and is_running(second.pid), "a sleeper is still suspended"
    (directory,) = (tmp_path / "out").iterdir()
    agg = json.loads((directory / "gameday.json").read_text())
    assert [e["status"] for e in agg["experiments"]] == ["done", "done", "skipped"]
    assert [e["exit_code"] for e in agg["experiments"][:2]] == [code, code]
    assert agg["stopped"] == f"interrupted by {sig.name}" and agg["exit_code"] == code
    for item in agg["experiments"][:2]:
        journal = json.loads((directory / item["journal"]).read_text())
        assert journal["verdict"] == "interrupted"
        assert [i["outcome"] for i in journal["injections"]] == ["reverted"]
    status = run_chaos("status", "--json", env=env, timeout=30)
    assert status.returncode == 0 and status_injections(status) == []


def test_a_killed_game_day_stops_its_experiments_at_once(tmp_path: Path,
                                                         spawn_sleepers: object) -> None:
    (sleeper,) = spawn_sleepers(1, "gameday-kill-target")  # type: ignore[operator]
    path = write_gameday(tmp_path, f"""
title: Killed game day
experiments:
  - {{file: "{{fixtures}}/suspend-sleeper.yaml", vars: {{pid: "{sleeper.pid}"}}}}
""")
    env = {"CHAOS_STATE_DIR": str(tmp_path / "state"), **NO_PROXY}
    proc = subprocess.Popen(chaos_cmd("gameday", "run", str(path), "--out", str(tmp_path / "out")),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **env})
    try:
        assert wait_until(lambda: process_state(sleeper.pid) == "T", timeout=30) is not None, \
            "the fault was never injected"
        proc.kill()
        proc.wait(10)
        # the fault holds for 30 s; the experiment's runner must revert long before that
        assert wait_until(lambda: is_running(sleeper.pid), timeout=10) is not None, \
            "the sleeper stayed suspended after the game day was killed"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert wait_until(lambda: open_injections(env=env) == [], timeout=15)
