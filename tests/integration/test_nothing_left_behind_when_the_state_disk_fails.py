"""No fault is injected without a durable intent, and no ledger error stops a revert.

The state dir is a tiny tmpfs (tests/support/state_disk.py) that the test fills or turns
read-only at a chosen step: between the runner's steps with a `NAME:stop` failpoint, or while
faults are held. Targets are the test's own processes, read from /proc; kernel faults are read
with `nft list ruleset` and `tc qdisc show`. After each case nothing is left, and the ledger
either tells the truth or the runner says it could not (exit 5, with what to run).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from chaos.safety.ledger import read_records
from tests.conftest import (
    journals, open_injections, process_state, processes_matching, run_chaos,
    unique_marker, wait_until)
from tests.support.cli_process import ChaosProcess, start_runner
from tests.support.state_disk import StateDisk, kernel_state, resume, state_disk

BUDGET = 10.0  # generous: a loaded 2-core CI machine


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StateDisk]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    with state_disk(tmp_path / "state") as mounted:
        monkeypatch.setenv("CHAOS_STATE_DIR", str(mounted.path))
        monkeypatch.setenv("CHAOS_RUNS_DIR", str(tmp_path / "runs"))  # on the real disk
        yield mounted


@pytest.fixture
def targets(spawn_sleepers: Callable[..., list[psutil.Process]]) -> list[int]:
    return [p.pid for p in spawn_sleepers(3, unique_marker())]


def freeze(tmp_path: Path, pids: list[int], duration: str) -> Path:
    faults = "\n".join(f"""  - name: freeze-{i}
    type: process.suspend
    target: {{process: {{pid: {pid}}}}}
    duration: {duration}""" for i, pid in enumerate(pids))
    path = tmp_path / "freeze.yaml"
    path.write_text(f"title: freeze the targets\nfaults:\n{faults}\n")
    return path


def output(path: Path) -> str:
    return path.with_suffix(".log").read_text()


def stopped(pids: list[int]) -> list[int]:
    return [p for p in pids if process_state(p) == "T"]


def events(disk: StateDisk, name: str) -> list[dict[str, object]]:
    """Records of one kind, every line checked to be whole: for checks after the run."""
    return [r for r in disk.ledger_lines() if r.get("event") == name]


def applied_count(disk: StateDisk) -> int:
    """For polling while the runner writes: a line being appended is skipped, not an error."""
    return sum(r["event"] == "applied" for p in disk.ledger_files() for r in read_records(p))


def watchdogs(run_marker: str) -> list[psutil.Process]:
    return processes_matching(f"chaos.safety.watchdog --state-dir {run_marker}")


def test_a_full_state_disk_refuses_the_fault_before_anything_is_injected(
    tmp_path: Path, disk: StateDisk, targets: list[int]
) -> None:
    target = targets[0]
    path = freeze(tmp_path, [target], "30s")
    # stop right before the intent; and should anything get injected, die before `applied`:
    # a torn intent would then leave the target frozen with nothing open in the ledger
    runner = start_runner(path, "before_intent:stop,after_inject")
    try:
        assert wait_until(lambda: process_state(runner.pid) == "T", 60) is not None, (
            output(path))
        [ledger] = disk.ledger_files()
        disk.pad_ledger(ledger)  # the intent is cut at the page boundary, as on a long ledger
        disk.fill()
        resume(runner.pid)
        assert runner.wait(60) == 2, output(path)
    finally:
        runner.close()
    said = output(path)
    assert "refused, nothing injected" in said and str(disk.path) in said, said
    assert "No space left on device" in said and "free space" in said, said
    assert "internal error" not in said and "Traceback" not in said, said
    assert process_state(target) != "T"
    assert events(disk, "intent") == []  # and every line left is a whole record
    assert wait_until(lambda: not watchdogs(str(disk.path)), BUDGET) is not None
    disk.free()
    assert open_injections() == []


@pytest.mark.parametrize("how", ["read-only", "full"])
def test_an_unusable_state_dir_at_start_is_refused_with_what_to_do(
    tmp_path: Path, disk: StateDisk, targets: list[int], how: str
) -> None:
    if how == "full":
        disk.fill()
    else:
        disk.remount_read_only()
    result = run_chaos("run", "-q", str(freeze(tmp_path, targets[:1], "30s")))
    said = result.stdout + result.stderr
    assert result.returncode == 2, said
    why = "Read-only file system" if how == "read-only" else "No space left on device"
    assert str(disk.path) in said and why in said and "what to do:" in said, said
    assert "internal error" not in said and "Traceback" not in said, said
    assert process_state(targets[0]) != "T"


def hold_three(tmp_path: Path, disk: StateDisk, targets: list[int],
               duration: str) -> tuple[Path, ChaosProcess]:
    path = freeze(tmp_path, targets, duration)
    runner = start_runner(path)
    held = lambda: len(stopped(targets)) == 3 and applied_count(disk) == 3
    if wait_until(held, 60) is None:
        runner.close()
        raise AssertionError(output(path))
    return path, runner


def break_disk(disk: StateDisk, how: str) -> None:
    if how == "full":
        [ledger] = disk.ledger_files()
        disk.pad_ledger(ledger)
        disk.fill()
    else:
        disk.read_only()


def repair(disk: StateDisk, how: str) -> None:
    disk.free() if how == "full" else disk.writable()


def recover_closes_everything(disk: StateDisk, targets: list[int]) -> None:
    """The ledger could not record the reverts: it still says open; recover closes them."""
    assert len(open_injections()) == 3
    recovered = run_chaos("recover", timeout=120)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert open_injections() == []
    assert not stopped(targets)


@pytest.mark.parametrize("how", ["read-only", "full"])
def test_the_runner_reverts_every_fault_when_the_state_disk_breaks_while_they_are_held(
    tmp_path: Path, disk: StateDisk, targets: list[int], how: str
) -> None:
    path, runner = hold_three(tmp_path, disk, targets, "4s")
    try:
        break_disk(disk, how)
        code = runner.wait(120)
    finally:
        runner.close()
    said = output(path)
    assert not stopped(targets), said  # every one resumed, none skipped after a failed record
    assert code == 5, said
    assert "reverted, but could not record it" in said and "chaos recover" in said, said
    assert "Traceback" not in said and "internal error" not in said, said
    [journal] = journals(tmp_path / "runs")  # the runs dir is on another disk
    assert journal["exit_code"] == 5
    assert sorted(i["outcome"] for i in journal["injections"]) == ["reverted"] * 3
    repair(disk, how)
    recover_closes_everything(disk, targets)


def test_the_watchdog_reverts_every_fault_when_the_runner_dies_on_a_read_only_state_disk(
    tmp_path: Path, disk: StateDisk, targets: list[int]
) -> None:
    path, runner = hold_three(tmp_path, disk, targets, "60s")
    [watchdog] = watchdogs(str(disk.path))
    try:
        disk.read_only()
        runner.kill()
        runner.wait(10)
        assert wait_until(lambda: not stopped(targets), BUDGET) is not None, stopped(targets)
        watchdog.wait(60)  # it ends once its last revert pass is done
    finally:
        runner.close()
    log = next((disk.path / "watchdog").glob("*.log")).read_text()
    assert "could not record it" in log and "chaos recover" in log, log
    assert "Traceback" not in log, log
    disk.writable()
    recover_closes_everything(disk, targets)


def test_the_journal_goes_to_stderr_when_the_runs_dir_is_full_too(
    tmp_path: Path, disk: StateDisk, targets: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    with state_disk(tmp_path / "runs", "1m") as runs:
        monkeypatch.setenv("CHAOS_RUNS_DIR", str(runs.path))
        runs.fill()
        path, runner = hold_three(tmp_path, disk, targets, "4s")
        try:
            break_disk(disk, "full")
            code = runner.wait(120)
        finally:
            runner.close()
    said = output(path)
    assert not stopped(targets) and code == 5, said
    assert "the journal follows on stderr" in said, said
    start_at = said.index("\n{", said.index("the journal follows")) + 1
    journal, _ = json.JSONDecoder().raw_decode(said, start_at)
    assert journal["exit_code"] == 5 and len(journal["injections"]) == 3


# --- kernel faults: tc and nftables in a network namespace, read back with tc and nft


def shape_and_cut(tmp_path: Path, pair: dict[str, str], duration: str) -> Path:
    target = f"{{netns: {{name: {pair['b']}, device: {pair['dev_b']}"
    path = tmp_path / "kernel.yaml"
    path.write_text(f"""title: shape and cut
faults:
  - name: shape
    type: network.bandwidth
    target: {target}}}}}
    with: {{rate: 128KiB}}
    duration: {duration}
  - name: cut
    type: network.partition
    target: {target}, port: 8001, protocol: tcp}}}}
    duration: {duration}
""")
    return path


@pytest.mark.parametrize("how", ["read-only", "full"])
@pytest.mark.parametrize("reverter", ["runner", "watchdog"])
def test_kernel_faults_are_restored_when_the_state_disk_breaks_while_they_are_held(
    tmp_path: Path, disk: StateDisk, netns_pair: dict[str, str], how: str, reverter: str
) -> None:
    namespaces = [netns_pair["a"], netns_pair["b"]]
    before = kernel_state(namespaces)
    path = shape_and_cut(tmp_path, netns_pair, "4s" if reverter == "runner" else "60s")
    runner = start_runner(path)
    try:
        assert wait_until(lambda: applied_count(disk) == 2, 60) is not None, (
            output(path))
        assert kernel_state(namespaces) != before
        break_disk(disk, how)
        if reverter == "watchdog":
            runner.kill()
        code = runner.wait(120)
        restored = wait_until(lambda: kernel_state(namespaces) == before, BUDGET, 0.1)
        assert restored is not None, kernel_state(namespaces)
    finally:
        runner.close()
    assert code == (5 if reverter == "runner" else -signal.SIGKILL), output(path)
    assert wait_until(lambda: not watchdogs(str(disk.path)), BUDGET) is not None
    repair(disk, how)
    assert len(open_injections()) == 2  # the ledger could not record the reverts...
    recovered = run_chaos("recover", timeout=120)  # ...and recover closes them, harmlessly
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert open_injections() == [] and kernel_state(namespaces) == before


def test_a_full_state_disk_refuses_a_kernel_fault_before_touching_the_namespace(
    tmp_path: Path, disk: StateDisk, netns_pair: dict[str, str]
) -> None:
    namespaces = [netns_pair["a"], netns_pair["b"]]
    before = kernel_state(namespaces)
    path = shape_and_cut(tmp_path, netns_pair, "30s")
    runner = start_runner(path, "before_intent:stop,after_inject")
    try:
        assert wait_until(lambda: process_state(runner.pid) == "T", 60) is not None, (
            output(path))
        [ledger] = disk.ledger_files()
        disk.pad_ledger(ledger)
        disk.fill()
        resume(runner.pid)  # both faults start at 0s: each stops at its intent in turn
        while runner.poll() is None:
            if process_state(runner.pid) == "T":
                resume(runner.pid)
            wait_until(lambda: runner.poll() is not None or process_state(runner.pid) == "T",
                       60)
    finally:
        runner.close()
    assert runner.returncode == 2, output(path)
    assert kernel_state(namespaces) == before
    assert events(disk, "intent") == []


def test_a_disk_that_fills_between_inject_and_applied_still_leaves_nothing_behind(
    tmp_path: Path, disk: StateDisk, targets: list[int]
) -> None:
    path = freeze(tmp_path, targets[:1], "30s")
    runner = start_runner(path, "after_inject:stop")  # injected, `applied` not written yet
    try:
        assert wait_until(lambda: process_state(runner.pid) == "T", 60) is not None, (
            output(path))
        # SIGSTOP is delivered asynchronously: the target may need a moment to stop
        assert wait_until(lambda: process_state(targets[0]) == "T", 10) is not None
        [ledger] = disk.ledger_files()
        disk.pad_ledger(ledger)
        disk.fill()
        resume(runner.pid)
        code = runner.wait(60)
    finally:
        runner.close()
    said = output(path)
    assert process_state(targets[0]) != "T", said
    assert code == 5 and "reverted, but could not record it" in said, said
    assert "Traceback" not in said and "internal error" not in said, said
    disk.free()
    assert len(open_injections()) == 1  # the intent is there; what followed could not be
    assert run_chaos("recover").returncode == 0
    assert open_injections() == [] and process_state(targets[0]) != "T"
