"""A frozen runner (Ctrl-Z, a stuck event loop) does not hold a fault: its watchdog reverts when
the heartbeats stop. And two runs cannot fight over one target: the second is refused."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil

from tests.conftest import ROOT, chaos_cmd, open_injections, process_state
from tests.conftest import wait_until as wait_for
from tests.support.experiment_files import freeze


def freeze_file(tmp_path: Path, pid: int, name: str = "freeze") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"title: {name}\n{freeze(pid, '5m')}")
    return path


def test_watchdog_reverts_when_the_runner_stops_heartbeating(
    tmp_path: Path, state_dir: Path, sleeper: psutil.Process
) -> None:
    env = {**os.environ, "CHAOS_HEARTBEAT_TIMEOUT": "2"}
    path = freeze_file(tmp_path, sleeper.pid)
    with open(tmp_path / "runner.log", "wb") as log:
        runner = subprocess.Popen(chaos_cmd("run", str(path)), cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: process_state(sleeper.pid) == "T", 15) is not None
        os.kill(runner.pid, signal.SIGSTOP)  # what Ctrl-Z does
        took = wait_for(lambda: process_state(sleeper.pid) != "T", 8, 0.01)
        assert took is not None, "the watchdog did not revert for a frozen runner"
        assert 1.0 < took, "reverted before the heartbeat timeout: too eager"
        os.kill(runner.pid, signal.SIGCONT)
        runner.send_signal(signal.SIGINT)
        assert runner.wait(15) == 130, (tmp_path / "runner.log").read_text()
        assert process_state(sleeper.pid) != "T"
        assert open_injections() == []
    finally:
        os.kill(runner.pid, signal.SIGCONT) if runner.poll() is None else None
        runner.kill()
        runner.wait(10)  # an unwaited Popen warns in a later test


def test_a_second_run_on_the_same_target_is_refused(
    tmp_path: Path, state_dir: Path, sleeper: psutil.Process
) -> None:
    first_file = freeze_file(tmp_path, sleeper.pid, "first")
    with open(tmp_path / "first.log", "wb") as log:
        first = subprocess.Popen(chaos_cmd("run", str(first_file)), cwd=ROOT, stdout=log,
                                 stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: process_state(sleeper.pid) == "T", 15) is not None
        # the target is frozen by the first run; the second wants to kill it
        second_file = tmp_path / "second.yaml"
        second_file.write_text(f"""title: second
faults:
  - type: process.kill
    target: {{process: {{pid: {sleeper.pid}}}}}
""")
        second = subprocess.run(chaos_cmd("run", str(second_file)), cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stdout + second.stderr
        assert "already targeted by run" in second.stdout + second.stderr
        assert sleeper.is_running() and process_state(sleeper.pid) == "T"
        first.send_signal(signal.SIGTERM)
        assert first.wait(15) == 143
        assert process_state(sleeper.pid) != "T"
    finally:
        first.kill()
        first.wait(10)  # an unwaited Popen warns in a later test
