"""A run never hits another live run's runner or watchdog, however broad its selector.

Run A freezes a test process and holds it; run B's selector matches A's runner and A's watchdog
(as `{name: python3}` would by accident). B is refused with the reason, and psutil shows both of
A's processes alive and running; A's watchdog still does its job when A's runner is killed.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, chaos_cmd, is_running, process_state, run_chaos, wait_until


def ledger_runs(state_dir: Path) -> list[str]:
    return [p.stem for p in (state_dir / "ledger").glob("*.jsonl")]


def watchdog_of(run: str) -> psutil.Process | None:
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "chaos.safety.watchdog" in cmd and run in cmd:
            return proc
    return None


@pytest.fixture
def run_a(tmp_path: Path, state_dir: Path,
          sleeper: psutil.Process) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run A: holds `sleeper` frozen for minutes. Yields (runner process, run id)."""
    path = tmp_path / "run-a.yaml"
    path.write_text(f"""title: run A holds a fault
faults:
  - type: process.suspend
    target: {{process: {{pid: {sleeper.pid}}}}}
    duration: 5m
""")
    with open(tmp_path / "run-a.log", "wb") as log:
        runner = subprocess.Popen(chaos_cmd("run", str(path)), cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: process_state(sleeper.pid) == "T", 30) is not None, (
            (tmp_path / "run-a.log").read_text())
        (run,) = ledger_runs(state_dir)
        assert wait_until(lambda: watchdog_of(run) is not None, 10) is not None
        yield runner, run
    finally:
        if runner.poll() is None:
            runner.send_signal(signal.SIGTERM)
            runner.wait(30)


def broad_run(tmp_path: Path, selector: str, fault: str = "process.kill") -> Path:
    path = tmp_path / "run-b.yaml"
    path.write_text(f"""title: run B with a broad selector
faults:
  - type: {fault}
    target: {{process: {{cmdline: '{selector}'}}}}
""" + ("    duration: 10s\n" if fault == "process.suspend" else ""))
    return path


@pytest.mark.parametrize("fault", ["process.kill", "process.suspend"])
def test_another_runs_watchdog_and_runner_are_refused(
    tmp_path: Path, state_dir: Path, sleeper: psutil.Process,
    run_a: tuple[subprocess.Popen[bytes], str], fault: str,
) -> None:
    runner, run = run_a
    watchdog = watchdog_of(run)
    assert watchdog is not None
    a_file = str(tmp_path / "run-a.yaml")
    for selector, expected in [(rf"chaos\.safety\.watchdog .*{run}", "the watchdog of another"),
                               (a_file, "the runner of another")]:
        result = run_chaos("run", str(broad_run(tmp_path, selector, fault)), timeout=90)
        out = result.stdout + result.stderr
        assert result.returncode == 2, out
        assert expected in out and run in out, out
        assert "Traceback" not in out, out
        for proc in (psutil.Process(runner.pid), watchdog):
            assert proc.is_running() and is_running(proc.pid), (proc, out)
        dry = run_chaos("run", "--dry-run", str(tmp_path / "run-b.yaml"), timeout=90)
        assert dry.returncode == 2 and expected in dry.stdout, dry.stdout + dry.stderr
    assert process_state(sleeper.pid) == "T"  # A still holds its fault, guarded
    runner.kill()  # and its watchdog, untouched, still reverts it
    assert wait_until(lambda: process_state(sleeper.pid) != "T", 20) is not None


def test_a_finished_runs_pids_are_not_protected(
    tmp_path: Path, state_dir: Path, sleeper: psutil.Process,
    run_a: tuple[subprocess.Popen[bytes], str],
) -> None:
    """Once A has ended, nothing about it is protected any more: B may suspend the process A
    held (here: the test's sleeper, which B's selector names by pid)."""
    runner, run = run_a
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(30) == 143
    assert wait_until(lambda: watchdog_of(run) is None, 20) is not None
    result = run_chaos("inject", "process.suspend", "--pid", str(sleeper.pid), "--for", "1s",
                       timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
