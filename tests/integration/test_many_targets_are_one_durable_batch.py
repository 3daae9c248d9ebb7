"""A fault over many targets is written ahead as one batch, and nothing of it is lost when the
runner dies at any step: the watchdog - or `chaos recover` from the ledger alone - resumes every
target, also when the batch was only partly applied or partly reverted.

Targets are real processes owned by the test; their state is read from /proc. The runner SIGKILLs
itself at each failpoint of the protocol (CHAOS_FAILPOINTS).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.conftest import (
    open_injections, process_state, run_chaos, unique_marker, wait_until)
from tests.support.cli_process import start_runner

N = 20


@pytest.fixture
def many(spawn_sleepers: Callable[..., list[psutil.Process]]) -> tuple[str, list[int]]:
    marker = unique_marker()
    return marker, [p.pid for p in spawn_sleepers(N, marker)]


def experiment(tmp_path: Path, marker: str, duration: str, start: str = "0s") -> Path:
    path = tmp_path / "many.yaml"
    path.write_text(f"""title: freeze {N} processes at once
faults:
  - name: freeze-all
    type: process.suspend
    target: {{process: {{cmdline: '{marker}'}}}}
    start: {start}
    duration: {duration}
limits: {{max_targets: {N}}}
""")
    return path


def stopped(pids: list[int]) -> list[int]:
    return [p for p in pids if process_state(p) == "T"]


def ledger_records(state_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for f in (state_dir / "ledger").glob("*.jsonl")
            for line in f.read_text().splitlines() if line.strip()]


def watchdog_of(runner_pid: int) -> psutil.Process | None:
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "chaos.safety.watchdog" in cmd and str(runner_pid) in cmd:
            return proc
    return None


def test_one_intent_one_applied_one_reverted_for_the_whole_set(
    tmp_path: Path, state_dir: Path, many: tuple[str, list[int]]
) -> None:
    marker, pids = many
    result = run_chaos("run", "-q", str(experiment(tmp_path, marker, "1s")), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not stopped(pids)
    events = [r["event"] for r in ledger_records(state_dir)]
    assert events == ["run", "watchdog", "intent", "applied", "reverted", "finished"], events
    intent = next(r for r in ledger_records(state_dir) if r["event"] == "intent")
    batch = intent["batch"]
    assert isinstance(batch, list)
    assert sorted(p["pid"] for b in batch for p in b["revert"]["processes"]) == sorted(pids)


@pytest.mark.parametrize("point", ["after_intent", "after_inject", "before_applied",
                                   "after_applied", "before_revert", "after_revert",
                                   "after_reverted", "during_cleanup"])
def test_watchdog_resumes_every_target_from_every_step(
    tmp_path: Path, state_dir: Path, many: tuple[str, list[int]], point: str
) -> None:
    marker, pids = many
    runner = start_runner(experiment(tmp_path, marker, "500ms"), point)
    try:
        assert runner.wait(60) == -signal.SIGKILL, "the failpoint did not fire"
        assert wait_until(lambda: not stopped(pids), 10) is not None, stopped(pids)
        assert wait_until(lambda: not open_injections(), 10, 0.1) is not None, (
            open_injections())
    finally:
        runner.close()


@pytest.mark.parametrize("point, left_stopped", [("after_inject", 1), ("after_revert", N - 1)])
def test_recover_resumes_a_partly_applied_or_reverted_batch(
    tmp_path: Path, state_dir: Path, many: tuple[str, list[int]], point: str,
    left_stopped: int,
) -> None:
    """Watchdog frozen, runner killed half-way through the batch: the ledger alone (plain data)
    is enough for `chaos recover` to resume exactly the targets still stopped, and the rest."""
    marker, pids = many
    runner = start_runner(experiment(tmp_path, marker, "1s", start="3s"), point)
    watchdog = None
    try:
        def ready() -> bool:  # the watchdog logs this once it told the runner it is ready
            return any("watching runner pid" in log.read_text()
                       for log in (state_dir / "watchdog").glob("*.log"))

        assert wait_until(ready, 30) is not None
        watchdog = watchdog_of(runner.pid)
        assert watchdog is not None
        watchdog.suspend()
        assert runner.wait(60) == -signal.SIGKILL, "the failpoint did not fire"
        watchdog.kill()
        watchdog.wait(10)
        assert len(stopped(pids)) == left_stopped
        assert len(open_injections()) == N  # every target is an open entry of the batch
        recovered = run_chaos("recover", timeout=60)
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
        assert not stopped(pids)
        assert open_injections() == []
    finally:
        runner.close()
        if watchdog is not None and watchdog.is_running():
            watchdog.resume()
            watchdog.kill()
