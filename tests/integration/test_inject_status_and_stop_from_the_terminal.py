"""Ad hoc use from a terminal: `chaos inject` in the foreground, `chaos status` and `chaos stop`
from another one, Ctrl-C to end early.

Every command is its own subprocess, as a person would run them; the target's state comes from
/proc, never from the runner.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import (
    ROOT, chaos_cmd, is_running, process_state, run_chaos, status_injections, unique_marker,
    wait_until)


class Inject:
    """A foreground `chaos inject ...`, its output in a file."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(chaos_cmd("inject", *args), cwd=ROOT, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    @property
    def output(self) -> str:
        return self.log.read_text()

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"chaos inject did not exit within {timeout}s:\n{self.output}")

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def inject(tmp_path: Path, state_dir: Path) -> Iterator[Any]:
    started: list[Inject] = []

    def start(*args: str) -> Inject:
        started.append(Inject(tmp_path / f"inject-{len(started)}.log", *args))
        return started[-1]

    yield start
    for proc in started:
        proc.end()


def status() -> list[dict[str, Any]]:
    result = run_chaos("status", "--json", timeout=30)
    assert result.returncode == 0, result.stderr
    return status_injections(result)


def frozen(pid: int) -> bool:
    return process_state(pid) == "T"


def test_suspend_for_a_while_then_resume(inject: Any, sleeper: psutil.Process) -> None:
    run = inject("process.suspend", "--pid", str(sleeper.pid), "--for", "3s")
    assert wait_until(lambda: frozen(sleeper.pid), 15) is not None, run.output
    frozen_at = time.monotonic()

    (row,) = status()
    assert row["fault"] == "process.suspend"
    assert f"pid {sleeper.pid} " in row["target"]
    assert row["state"] == "applied" and row["runner_alive"] is True
    shown = run_chaos("status", timeout=30)
    assert shown.returncode == 0, shown.stderr
    header, line = shown.stdout.splitlines()
    assert header.split() == ["ID", "FAULT", "TARGET", "STATE", "LEFT", "RUNNER"]
    assert line.startswith(row["id"] + " ") and "process.suspend" in line
    assert f"pid {sleeper.pid} " in line and "running (pid " in line
    # the columns line up under their headers
    assert line.index("process.suspend") == header.index("FAULT")
    assert line.index("applied") == header.index("STATE")

    assert run.wait(15) == 0, run.output
    held = time.monotonic() - frozen_at
    assert is_running(sleeper.pid)
    assert 1.5 < held < 6, f"held for {held:.1f}s, asked for 3s"
    assert status() == []
    assert "no active injections" in run_chaos("status", timeout=30).stdout


def test_stop_all_from_another_terminal_resumes_and_ends_the_inject(
        inject: Any, sleeper: psutil.Process) -> None:
    run = inject("process.suspend", "--pid", str(sleeper.pid), "--for", "60s")
    assert wait_until(lambda: frozen(sleeper.pid), 15) is not None, run.output

    stop = run_chaos("stop", "--all", timeout=30)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "reverted" in stop.stdout and "stopped run" in stop.stdout
    assert is_running(sleeper.pid), "chaos stop returned before the target was resumed"
    assert status() == []
    assert run.wait(10) == 143, run.output  # the foreground inject ends, cleanly
    assert is_running(sleeper.pid)
    assert status() == []
    assert "Traceback" not in run.output


def test_stop_by_injection_id(inject: Any, spawn_sleepers: Any) -> None:
    first, second = spawn_sleepers(2, unique_marker())
    runs = [inject("process.suspend", "--pid", str(p.pid), "--for", "60s")
            for p in (first, second)]
    assert wait_until(lambda: frozen(first.pid) and frozen(second.pid), 15) is not None, \
        runs[0].output + runs[1].output
    (row,) = [r for r in status() if f"pid {first.pid} " in r["target"]]

    stop = run_chaos("stop", row["id"], timeout=30)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert is_running(first.pid)
    assert frozen(second.pid), "chaos stop ID reverted more than that injection"
    (left,) = status()
    assert f"pid {second.pid} " in left["target"]
    # the stopped one's foreground inject ends by itself, saying who stopped it
    assert runs[0].wait(15) == 0, runs[0].output
    assert "by chaos stop" in runs[0].output
    runs[1].proc.send_signal(signal.SIGINT)
    assert runs[1].wait(10) == 130, runs[1].output
    assert is_running(second.pid)


def test_stop_of_an_unknown_id_says_so(state_dir: Path) -> None:
    result = run_chaos("stop", "no-such-injection", timeout=30)
    assert result.returncode == 2
    assert "nothing to stop" in result.stdout


def test_ctrl_c_resumes_the_target_and_exits_130(inject: Any, sleeper: psutil.Process) -> None:
    run = inject("process.suspend", "--pid", str(sleeper.pid), "--for", "60s")
    assert wait_until(lambda: frozen(sleeper.pid), 15) is not None, run.output
    run.proc.send_signal(signal.SIGINT)
    took = wait_until(lambda: is_running(sleeper.pid), 5, every=0.005)
    assert took is not None and took < 1.0, f"resumed {took}s after Ctrl-C"
    assert run.wait(10) == 130, run.output
    assert "INTERRUPTED" in run.output
    assert status() == []


def test_sigterm_resumes_the_target_and_exits_143(inject: Any, sleeper: psutil.Process) -> None:
    run = inject("process.suspend", "--pid", str(sleeper.pid), "--for", "60s")
    assert wait_until(lambda: frozen(sleeper.pid), 15) is not None, run.output
    run.proc.terminate()
    assert run.wait(10) == 143, run.output
    assert is_running(sleeper.pid)
    assert status() == []


def test_inject_kill_kills_the_process(state_dir: Path, sleeper: psutil.Process) -> None:
    result = run_chaos("inject", "process.kill", "--pid", str(sleeper.pid), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert wait_until(lambda: not is_running(sleeper.pid), 5) is not None
    assert process_state(sleeper.pid) == "Z"  # dead, waiting for the test to reap it
    assert status() == []


def test_inject_rejects_a_bad_duration_by_flag_name(state_dir: Path,
                                                    sleeper: psutil.Process) -> None:
    result = run_chaos("inject", "process.suspend", "--pid", str(sleeper.pid), "--for", "soon",
                       timeout=60)
    assert result.returncode == 2
    assert "--for" in result.stderr
    assert is_running(sleeper.pid)
