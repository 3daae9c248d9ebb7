"""SIGINT/SIGTERM roll back at once, even during a long background action or a continuous
hypothesis probe (Chaos Toolkit waits for them, and by default skips rollbacks when interrupted);
SIGKILL of whichever process runs the experiment - ours or chaoslib's - leaves the watchdog to
revert a fault injected through chaos.ctk.actions. All effects are checked from outside."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.conftest import (
    ROOT,
    chaos_cmd,
    is_running,
    process_state,
    processes_matching,
    release,
    unique_marker,
    wait_until,
)
from tests.ctk.conftest import FIXTURES, outcome

# generous bounds on waiting, far below the 15-20 s activities they must not wait for
QUICKLY = 10.0


def start_ours(fixture: str, workdir: Path, *args: str) -> tuple[subprocess.Popen[str], Path]:
    journal = workdir.parent / "ctk-journal.json"
    proc = subprocess.Popen(
        chaos_cmd("run", "-q", str(FIXTURES / fixture), "--journal-format", "ctk", "--journal",
                  str(journal), "--var", f"workdir={workdir}", *args),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, journal


def start_theirs(fixture: str, workdir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ctk.reference", str(FIXTURES / fixture),
         "--var", f"workdir={workdir}", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_a_long_background_action_rolls_back_at_once(
        dirs: dict[str, Path], signum: signal.Signals, code: int) -> None:
    marker = unique_marker("ctk-bg")
    proc, journal = start_ours("long-background.yaml", dirs["ours"], "--var", f"marker={marker}")
    out, err = interrupt_when(proc, lambda: background(marker, proc), signum)
    assert proc.returncode == code, out + err
    assert (dirs["ours"] / "rolled-back").exists()
    # the background action's process group (sh and its sleep) was killed, not abandoned
    assert wait_until(lambda: not background(marker, proc), 5) is not None
    ctk = json.loads(journal.read_text())
    assert ctk["status"] == "interrupted"
    assert outcome(ctk)["rollbacks"] == [("rollback", "succeeded")]
    runs = {r["activity"]["name"]: r for r in ctk["run"]}
    assert runs["foreground-sleep"]["status"] == "failed"  # never finished: we did not wait
    # either the journal was written before its thread noticed, or it has the killed process
    # group's exit status, as chaoslib's process provider reports it
    background_run = runs["background-sleep"]
    assert background_run["status"] == "failed" or (
        background_run["output"]["status"] == -signal.SIGKILL), background_run


def test_a_signal_kills_what_left_the_process_group(dirs: dict[str, Path]) -> None:
    """`timeout` puts itself in a process group of its own: killing the shell's group alone
    would leave it (and its child) running after the run ended; the session catches it."""
    marker = unique_marker("ctk-own-group")
    proc, _ = start_ours("own-group.yaml", dirs["ours"], "--var", f"marker={marker}")
    moved: list[int] = []

    def started() -> bool:
        found = background(marker, proc)
        with contextlib.suppress(ProcessLookupError):
            moved[:] = [p.pid for p in found if os.getpgid(p.pid) != os.getsid(p.pid)]
        return len(found) >= 2

    out, err = interrupt_when(proc, started)
    assert moved, "the fixture no longer makes a process group of its own"
    assert proc.returncode == 130, out + err
    assert (dirs["ours"] / "rolled-back").exists()
    assert wait_until(lambda: not background(marker, proc), 5) is not None, [
        p.cmdline() for p in background(marker, proc)]


def test_chaostoolkit_skips_rollbacks_when_interrupted(dirs: dict[str, Path]) -> None:
    """The documented difference, seen on chaoslib itself (with a 2 s background action)."""
    marker = unique_marker("ctk-theirs")
    proc = start_theirs("long-background.yaml", dirs["theirs"], "--var", f"marker={marker}",
                        "--var", "background_seconds=4")
    # once both actions run, so the signal lands inside the method, as the test means it
    out, _ = interrupt_when(proc, lambda: background(marker, proc) and (
        dirs["theirs"] / "foreground-started").exists(), timeout=30)
    theirs = json.loads(out.rsplit("@@journal@@", 1)[1])
    assert theirs["status"] == "interrupted" and theirs["rollbacks"] == []
    assert not (dirs["theirs"] / "rolled-back").exists()


def test_interruption_does_not_wait_for_a_continuous_hypothesis(dirs: dict[str, Path]) -> None:
    proc, journal = start_ours("continuous.yaml", dirs["ours"])
    # before (1), then continuous rounds (2, 3...): signal while a round's probe runs
    out, err = interrupt_when(proc, lambda: _ticks(dirs["ours"]) >= 3)
    assert proc.returncode == 130, out + err
    assert (dirs["ours"] / "rolled-back").exists()
    ctk = json.loads(journal.read_text())
    assert ctk["status"] == "interrupted" and ctk["steady_states"]["during"]


def interrupt_when(proc: subprocess.Popen[str], ready: Callable[[], object],
                   signum: int = signal.SIGINT, timeout: float = QUICKLY) -> tuple[str, str]:
    """Wait (bounded) until `ready()`, send `signum`, and collect the runner's output; the
    runner never outlives the test."""
    try:
        assert wait_until(ready, 15), _tail(proc)
        proc.send_signal(signum)
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def background(marker: str, runner: subprocess.Popen[str]) -> list[psutil.Process]:
    """The background action's processes (the runner's command line has the marker too)."""
    return [p for p in processes_matching(marker) if p.pid != runner.pid]


def _ticks(workdir: Path) -> int:
    path = workdir / "ticks"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.parametrize("runner", ["ours", "chaoslib"])
def test_sigkill_during_our_fault_leaves_the_watchdog_to_revert_it(
        dirs: dict[str, Path], sleeper: psutil.Process, runner: str) -> None:
    args = ["--var", f"target_pid:int={sleeper.pid}", "--var", "stay:int=30"]
    proc = (start_ours("suspend-with-our-fault.yaml", dirs["ours"], *args)[0] if runner == "ours"
            else start_theirs("suspend-with-our-fault.yaml", dirs["theirs"], *args))
    try:
        frozen = wait_until(lambda: process_state(sleeper.pid) == "T", 20)
        assert frozen is not None, _tail(proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=5)
        assert wait_until(lambda: is_running(sleeper.pid), QUICKLY) is not None
    finally:
        release_quietly(proc)
    listed = subprocess.run(chaos_cmd("status"), capture_output=True, text=True, timeout=30,
                            cwd=ROOT, check=False)
    assert "process.suspend" not in listed.stdout  # the ledger says it was reverted


def test_our_fault_under_chaostoolkit_is_reverted_by_its_rollback(
        dirs: dict[str, Path], sleeper: psutil.Process, state_dir: Path) -> None:
    proc = start_theirs("suspend-with-our-fault.yaml", dirs["theirs"],
                        "--var", f"target_pid:int={sleeper.pid}", "--var", "stay:int=1")
    out, err = proc.communicate(timeout=60)
    theirs = json.loads(out.rsplit("@@journal@@", 1)[1])
    assert outcome(theirs)["method"] == [("freeze", "succeeded"), ("stay", "succeeded"),
                                         ("while-frozen", "succeeded")], err[-2000:]
    assert outcome(theirs)["rollbacks"] == [("unfreeze", "succeeded")]
    assert is_running(sleeper.pid)
    freeze = next(r for r in theirs["run"] if r["activity"]["name"] == "freeze")
    run_id = freeze["output"]["run"]
    records = [json.loads(line) for line in
               (state_dir / "ledger" / f"{run_id}.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records if r.get("id")] == ["intent", "applied", "reverted"]


def release_quietly(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        release(proc)  # type: ignore[arg-type]
    proc.communicate()


def _tail(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        return "still running"
    out, err = proc.communicate()
    return (out + err)[-2000:]


def test_a_fault_not_injected_in_time_is_stopped_not_left_to_inject_later(
        state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The activity that gave up waiting says so, and its run never injects behind its back."""
    from chaos.ctk import keeper
    from chaos.ctk.actions import _experiment
    from chaos.errors import ChaosError

    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        monkeypatch.setattr(keeper, "START_TIMEOUT", 0.5)
        experiment = _experiment({"title": "late", "faults": [{
            "name": "late", "type": "process.suspend", "start": "20s", "duration": "5s",
            "target": {"process": {"pid": sleeper.pid}}}]})
        with pytest.raises(ChaosError, match="not injected within 0.5s"):
            keeper.KEEPER.hold(experiment, state_dir)
        late = keeper.KEEPER.held[-1]
        assert late.done.done() and not late.injections
        assert psutil.Process(sleeper.pid).status() != psutil.STATUS_STOPPED
    finally:
        sleeper.kill()
        sleeper.wait(10)


def test_a_signal_reverts_our_fault_before_a_slow_rollback_ends(
        dirs: dict[str, Path], sleeper: psutil.Process) -> None:
    """Rollbacks have no time limit: the faults chaos.ctk.actions holds are reverted alongside
    them, not after them."""
    proc, journal = start_ours("slow-rollback-with-our-fault.yaml", dirs["ours"],
                               "--var", f"target_pid:int={sleeper.pid}")
    done = dirs["ours"] / "rollback-done"
    try:
        assert wait_until(lambda: process_state(sleeper.pid) == "T", 20) is not None, _tail(proc)
        proc.send_signal(signal.SIGINT)
        resumed = wait_until(lambda: is_running(sleeper.pid) and not done.exists(), QUICKLY)
        assert resumed is not None and not done.exists(), "resumed only after the rollback"
        out, err = proc.communicate(timeout=30)
    finally:
        release_quietly(proc)
    assert proc.returncode == 130, out + err
    assert done.exists()  # the slow rollback still ran to its end
    ctk = json.loads(journal.read_text())
    assert outcome(ctk)["rollbacks"] == [("slow-rollback", "succeeded"),
                                         ("unfreeze", "succeeded")]


def test_a_revert_slower_than_the_stop_limit_is_a_failed_revert(
        state_dir: Path, sleeper: psutil.Process, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run does not say everything was reverted while a fault is still held."""
    import asyncio

    from chaos.ctk import keeper
    from chaos.ctk.document import load
    from chaos.ctk.engine import CtkEngine, CtkOptions
    from chaos.errors import ExitCode
    from chaos.runner.events import EventBus

    monkeypatch.setattr(keeper, "STOP_TIMEOUT", 0.5)
    experiment = load(FIXTURES / "stalled-revert.yaml")
    engine = CtkEngine(experiment, CtkOptions(config_vars={"target_pid": sleeper.pid}),
                       EventBus(), run_id="stalled-revert")
    result = asyncio.run(engine.run())
    assert result.exit_code == ExitCode.REVERT_FAILED, result.reason
    assert "did not finish within 0.5s" in result.reason and "chaos status" in result.reason
    # the keeper's loop, free again, finishes the revert
    assert wait_until(lambda: is_running(sleeper.pid), QUICKLY) is not None
