"""Two reverters of one run (two `chaos recover`, recover and a watchdog) never undo the same
entry at once, and the one that comes second does not reopen what the first closed.

Kernel faults are read back with `nft list ruleset` / `tc qdisc show` in the namespaces; the
ledger is read as written. The serialisation itself is shown with a process target: while the
test holds the run's revert lock, a `chaos recover` waits, and once the test has closed the
entry it finds nothing left to do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from chaos.safety.ledger import Ledger, expand, read_records
from tests.conftest import (
    ROOT, chaos_cmd, open_injections, process_state, processes_matching, unique_marker,
    wait_until)
from tests.support.state_disk import kernel_state

PORTS = (8001, 8002, 8003)


def partitions(tmp_path: Path, pair: dict[str, str]) -> Path:
    faults = "\n".join(f"""  - name: cut-{port}
    type: network.partition
    target: {{netns: {{name: {pair['b']}, device: {pair['dev_b']}, port: {port}, protocol: tcp}}}}
    duration: 60s""" for port in PORTS)
    path = tmp_path / "partitions.yaml"
    path.write_text(f"title: cut three ports\nfaults:\n{faults}\n")
    return path


def ledger_records(state_dir: Path) -> list[dict[str, object]]:
    """Every line of every ledger file, each checked to be a whole record (after the fact)."""
    raw = [json.loads(line) for p in (state_dir / "ledger").glob("*.jsonl")
           for line in p.read_text().splitlines() if line.strip()]
    return list(expand(raw))  # a batch record (many targets) as one record per target


def applied_count(state_dir: Path) -> int:
    """For polling while the runner appends: a line being written is skipped, not an error."""
    return sum(r["event"] == "applied" for p in (state_dir / "ledger").glob("*.jsonl")
               for r in read_records(p))


@pytest.mark.parametrize("round_", range(3))
def test_two_recovers_at_once_revert_each_nft_entry_once_and_leave_nothing_open(
    tmp_path: Path, state_dir: Path, netns_pair: dict[str, str], round_: int
) -> None:
    namespaces = [netns_pair["a"], netns_pair["b"]]
    before = kernel_state(namespaces)
    path = partitions(tmp_path, netns_pair)
    with open(tmp_path / "run.log", "wb") as log:
        runner = subprocess.Popen(chaos_cmd("run", "-q", str(path)), cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        applied = lambda: applied_count(state_dir) == 3
        assert wait_until(applied, 60, 0.05) is not None, (tmp_path / "run.log").read_text()
        [watchdog] = [p for p in processes_matching("chaos.safety.watchdog")
                      if str(runner.pid) in p.cmdline()]
        watchdog.kill()  # nobody reverts automatically any more
        watchdog.wait(10)
        runner.kill()
        runner.wait(10)
    finally:
        runner.kill()
        runner.wait(10)  # an unwaited Popen warns in a later test
    assert kernel_state(namespaces) != before
    racers = [subprocess.Popen(chaos_cmd("recover"), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    said = [r.communicate(timeout=120)[0] for r in racers]
    assert [r.returncode for r in racers] == [0, 0], said
    assert kernel_state(namespaces) == before
    assert open_injections() == []
    records = ledger_records(state_dir)
    closed = Counter(r["id"] for r in records if r["event"] == "reverted")
    assert sorted(closed.values()) == [1, 1, 1], records  # each undone by one of them only
    assert not [r for r in records if r["event"] == "revert_failed"], records


def test_a_recover_waits_for_the_run_s_revert_lock_and_leaves_closed_entries_alone(
    state_dir: Path, spawn_sleepers: Callable[..., list[psutil.Process]]
) -> None:
    [target] = spawn_sleepers(1, unique_marker())
    os.kill(target.pid, signal.SIGSTOP)
    ledger = Ledger(state_dir)
    ledger.start_run("r1", pid=os.getpid(), pid_create_time=0.0, title="gone runner")
    ledger.intent("r1", "r1.0.0", fault="process.suspend", target=f"pid {target.pid}",
                  revert={"adapter": "local.process", "action": "resume",
                          "processes": [{"pid": target.pid,
                                         "create_time": target.create_time()}]},
                  deadline=None)
    lock = ledger.revert_lock("r1")
    assert lock.try_acquire()
    recover = subprocess.Popen(chaos_cmd("recover"), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        waiting = lambda: any(f.path.endswith("r1.lock")
                              for f in psutil.Process(recover.pid).open_files())
        assert wait_until(waiting, 60) is not None, "recover never reached the revert lock"
        time.sleep(0.5)  # it keeps trying for the lock meanwhile
        assert recover.poll() is None and process_state(target.pid) == "T", (
            "recover went ahead while another reverter held the run")
        os.kill(target.pid, signal.SIGCONT)  # the other reverter's work...
        ledger.reverted("r1", "r1.0.0", by="watchdog")  # ...and its record
        os.kill(target.pid, signal.SIGSTOP)  # a stop recover must not undo: it is not ours
    finally:
        lock.release()
    said = recover.communicate(timeout=120)[0]
    assert recover.returncode == 0, said
    assert "nothing " in said and "nothing to recover" not in said, said
    assert process_state(target.pid) == "T"
    assert [r["by"] for r in ledger_records(state_dir) if r["event"] == "reverted"] == [
        "watchdog"]


def test_the_watchdog_waits_for_a_recover_in_progress_and_reverts_only_what_is_left(
    tmp_path: Path, state_dir: Path, spawn_sleepers: Callable[..., list[psutil.Process]]
) -> None:
    pids = [p.pid for p in spawn_sleepers(3, unique_marker())]
    faults = "\n".join(f"""  - name: freeze-{i}
    type: process.suspend
    target: {{process: {{pid: {pid}}}}}
    duration: 60s""" for i, pid in enumerate(pids))
    path = tmp_path / "freeze.yaml"
    path.write_text(f"title: freeze\nfaults:\n{faults}\n")
    with open(tmp_path / "run.log", "wb") as log:
        runner = subprocess.Popen(chaos_cmd("run", "-q", str(path)), cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT)
    ledger = Ledger(state_dir)
    try:
        applied = lambda: applied_count(state_dir) == 3
        assert wait_until(applied, 60, 0.05) is not None, (tmp_path / "run.log").read_text()
        [run] = ledger.run_ids()
        [watchdog] = [p for p in processes_matching("chaos.safety.watchdog")
                      if str(runner.pid) in p.cmdline()]
        lock = ledger.revert_lock(run)  # a `chaos recover --force` in the middle of its work
        assert lock.try_acquire()
        try:
            runner.kill()
            runner.wait(10)
            waiting = lambda: any(f.path.endswith(f"{run}.lock") for f in watchdog.open_files())
            assert wait_until(waiting, 60) is not None, "the watchdog never reached the lock"
            assert all(process_state(p) == "T" for p in pids), "it did not wait its turn"
            first = next(e for e in ledger.entries(run) if str(pids[0]) in e.target)
            os.kill(pids[0], signal.SIGCONT)  # what the recover undid...
            ledger.reverted(run, first.id, by="chaos recover")  # ...and recorded
        finally:
            lock.release()
        assert wait_until(lambda: all(process_state(p) != "T" for p in pids), 30) is not None
        assert wait_until(lambda: not ledger.open_entries(run), 30) is not None
    finally:
        runner.kill()
        runner.wait(10)  # an unwaited Popen warns in a later test
    closers = {(r["id"], r["by"]) for r in ledger_records(state_dir) if r["event"] == "reverted"}
    assert len(closers) == 3 and (first.id, "chaos recover") in closers, closers


def test_a_reverter_stuck_holding_the_lock_delays_the_watchdog_but_does_not_stop_it(
    tmp_path: Path, state_dir: Path, spawn_sleepers: Callable[..., list[psutil.Process]]
) -> None:
    pids = [p.pid for p in spawn_sleepers(2, unique_marker())]
    faults = "\n".join(f"""  - name: freeze-{i}
    type: process.suspend
    target: {{process: {{pid: {pid}}}}}
    duration: 60s""" for i, pid in enumerate(pids))
    path = tmp_path / "freeze.yaml"
    path.write_text(f"title: freeze\nfaults:\n{faults}\n")
    with open(tmp_path / "run.log", "wb") as log:
        runner = subprocess.Popen(chaos_cmd("run", "-q", str(path)), cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT)
    ledger = Ledger(state_dir)
    try:
        applied = lambda: applied_count(state_dir) == 2
        assert wait_until(applied, 60, 0.05) is not None, (tmp_path / "run.log").read_text()
        [run] = ledger.run_ids()
        lock = ledger.revert_lock(run)  # held and never let go: a frozen `chaos recover`
        assert lock.try_acquire()
        runner.kill()
        runner.wait(10)
        assert wait_until(lambda: all(process_state(p) != "T" for p in pids), 120) is not None
        assert wait_until(lambda: not ledger.open_entries(run), 30) is not None
        lock.release()
    finally:
        runner.kill()
        runner.wait(10)  # an unwaited Popen warns in a later test
    log_text = next((state_dir / "watchdog").glob("*.log")).read_text()
    assert "reverting anyway" in log_text, log_text
