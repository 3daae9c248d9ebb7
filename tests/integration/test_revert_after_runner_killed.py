"""No fault outlives its experiment, even when the runner is SIGKILLed.

Targets are real processes owned by the test; their state is read from /proc, independently of
the runner. The runner is killed at every step of the injection protocol (failpoints) and at
many moments of the hold and the revert (timers); the watchdog must resume every target within
2 s, and the ledger must show nothing open. With the watchdog killed too, `chaos recover` must.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.conftest import open_injections, process_state, run_chaos
from tests.conftest import wait_until as wait_for
from tests.support.cli_process import start_runner

RECOVERY_BUDGET = 2.0


@pytest.fixture
def targets(spawn_sleepers: Callable[..., list[psutil.Process]]) -> list[int]:
    return [p.pid for p in spawn_sleepers(3, "chaos-target")]


def experiment(tmp_path: Path, pids: list[int], duration: str = "30s",
               stagger: bool = False) -> Path:
    faults = "\n".join(
        f"""  - name: freeze-{i}
    type: process.suspend
    target: {{process: {{pid: {pid}}}}}
    start: {f"{i * 0.2:.1f}s" if stagger else "0s"}
    duration: {duration}"""
        for i, pid in enumerate(pids))
    path = tmp_path / "freeze.yaml"
    path.write_text(f"title: freeze the targets\nfaults:\n{faults}\n")
    return path


def stopped(pids: list[int]) -> list[int]:
    return [p for p in pids if process_state(p) == "T"]


def watchdog_of(runner_pid: int) -> psutil.Process | None:
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "chaos.safety.watchdog" in cmd and str(runner_pid) in cmd:
            return proc
    return None


def assert_all_resumed(pids: list[int]) -> None:
    took = wait_for(lambda: not stopped(pids), RECOVERY_BUDGET)
    assert took is not None, f"still stopped {RECOVERY_BUDGET}s after the kill: {stopped(pids)}"
    # the watchdog closes the ledger entries right after resuming
    assert wait_for(lambda: not open_injections(), 5, 0.1) is not None, open_injections()


# Kill points by timer: shortly after the first injection, while staggered injections are
# still being applied, during the hold, and around the end of the fault (while resuming).
TIMED_POINTS = [0.0, 0.01, 0.03, 0.07, 0.12, 0.2, 0.3, 0.45, 0.9, 1.4]
END_POINTS = [-0.05, -0.01, 0.0, 0.005, 0.01, 0.02, 0.04]


@pytest.mark.parametrize("delay", TIMED_POINTS)
def test_watchdog_resumes_targets_when_runner_is_killed_during_the_hold(
    tmp_path: Path, state_dir: Path, targets: list[int], delay: float
) -> None:
    runner = start_runner(experiment(tmp_path, targets, stagger=True))
    try:
        assert wait_for(lambda: stopped(targets[:1]), 15) is not None
        time.sleep(delay)
        runner.kill()
        runner.wait(5)
        assert_all_resumed(targets)
    finally:
        runner.close()


@pytest.mark.parametrize("offset", END_POINTS)
def test_watchdog_resumes_targets_when_runner_is_killed_while_reverting(
    tmp_path: Path, state_dir: Path, targets: list[int], offset: float
) -> None:
    runner = start_runner(experiment(tmp_path, targets, duration="1s"))
    try:
        assert wait_for(lambda: len(stopped(targets)) == 3, 15) is not None
        seen = time.monotonic()
        # the runner reverts ~1 s after it injected; aim at that moment, plus an offset
        time.sleep(max(0.0, 1.0 + offset - (time.monotonic() - seen)))
        runner.kill()
        runner.wait(5)
        assert_all_resumed(targets)
    finally:
        runner.close()


@pytest.mark.parametrize("point", ["after_intent", "after_inject", "after_applied",
                                   "before_revert", "after_revert", "after_reverted",
                                   "during_cleanup"])
def test_watchdog_reverts_from_every_step_of_the_protocol(
    tmp_path: Path, state_dir: Path, targets: list[int], point: str
) -> None:
    runner = start_runner(experiment(tmp_path, targets, duration="500ms"), failpoints=point)
    try:
        assert runner.wait(30) == -signal.SIGKILL, "the failpoint did not fire"
        assert_all_resumed(targets)
    finally:
        runner.close()


def test_recover_resumes_targets_when_runner_and_watchdog_are_both_killed(
    tmp_path: Path, state_dir: Path, targets: list[int]
) -> None:
    runner = start_runner(experiment(tmp_path, targets))
    try:
        assert wait_for(lambda: len(stopped(targets)) == 3, 15) is not None
        watchdog = watchdog_of(runner.pid)
        assert watchdog is not None, "no watchdog process found for the runner"
        watchdog.kill()
        runner.kill()
        runner.wait(5)
        watchdog.wait(5)
        time.sleep(0.5)
        assert sorted(stopped(targets)) == sorted(targets), "nothing should have resumed them"
        status = run_chaos("status")
        assert "RUNNER GONE" in status.stdout and "chaos recover" in status.stdout
        recovered = run_chaos("recover")
        assert recovered.returncode == 0, recovered.stderr
        assert not stopped(targets)
        assert open_injections() == []
        assert run_chaos("recover").stdout.strip() == "nothing to recover"
    finally:
        runner.close()
