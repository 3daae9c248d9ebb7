"""Which local processes a fault hits: selectors, seeded choices, and the guards that refuse.

Targets are real processes started by the test, marked by a unique argument so a selector can
only match them. The real CLI kills or freezes them; the test reads the result from /proc.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import (
    is_running, journals, run_chaos, status_injections, unique_marker, wait_until)


def alive(procs: list[psutil.Process]) -> list[bool]:
    return [is_running(p.pid) for p in procs]


def killed_by(result: Any, procs: list[psutil.Process], expected: list[bool]) -> None:
    """The CLI succeeded and exactly the processes flagged False are dead (as seen in /proc)."""
    assert result.returncode == 0, result.stdout + result.stderr
    assert wait_until(lambda: alive(procs) == expected, 5) is not None, (
        f"alive: {alive(procs)}, expected {expected}\n{result.stdout}{result.stderr}")


# --- selectors


def test_select_by_process_name(tmp_path: Path, state_dir: Path, spawn_sleepers: Any) -> None:
    name = "cit" + unique_marker("")[-8:]  # comm is cut at 15 characters
    link = tmp_path / name
    link.symlink_to("/bin/sleep")
    named = spawn_sleepers(1, argv=[str(link), "60"])
    others = spawn_sleepers(1, unique_marker())
    result = run_chaos("inject", "process.kill", "--process", name, timeout=60)
    killed_by(result, named + others, [False, True])


def test_select_by_cmdline_regex(state_dir: Path, spawn_sleepers: Any) -> None:
    marker = unique_marker()
    hit = spawn_sleepers(2, f"{marker}-hit")
    spared = spawn_sleepers(1, f"{marker}-spared")
    result = run_chaos("inject", "process.kill", "--cmdline", rf"{marker}-h[aeiou]t\b",
                       timeout=60)
    killed_by(result, hit + spared, [False, False, True])


def test_select_by_pid(state_dir: Path, spawn_sleepers: Any) -> None:
    target, bystander = spawn_sleepers(2, unique_marker())
    result = run_chaos("inject", "process.kill", "--pid", str(target.pid), timeout=60)
    killed_by(result, [target, bystander], [False, True])


def test_select_by_pidfile(tmp_path: Path, state_dir: Path, spawn_sleepers: Any) -> None:
    target, bystander = spawn_sleepers(2, unique_marker())
    pidfile = tmp_path / "service.pid"
    pidfile.write_text(f"{target.pid}\n")
    result = run_chaos("inject", "process.kill", "--pidfile", str(pidfile), timeout=60)
    killed_by(result, [target, bystander], [False, True])


def test_a_missing_pidfile_is_reported(tmp_path: Path, state_dir: Path) -> None:
    result = run_chaos("inject", "process.kill", "--pidfile", str(tmp_path / "nope.pid"),
                       timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot read a pid from pidfile" in result.stdout + result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="starting a process as another user needs root")
def test_select_by_user(state_dir: Path, spawn_sleepers: Any) -> None:
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user named nobody")
    # nobody may not run the test's Python (it lives under /root), so both run sleep(1) with a
    # unique duration as the marker
    marker = f"3600.{uuid.uuid4().int % 10**9:09d}"
    theirs = spawn_sleepers(1, argv=["/bin/sleep", marker], user="nobody")
    mine = spawn_sleepers(1, argv=["/bin/sleep", marker])
    assert wait_until(lambda: theirs[0].uids().real != 0, 5) is not None
    result = run_chaos("inject", "process.kill", "--cmdline", re.escape(marker), "--user",
                       "nobody", timeout=60)
    killed_by(result, theirs + mine, [False, True])


def test_an_unknown_user_is_reported(state_dir: Path) -> None:
    result = run_chaos("inject", "process.kill", "--cmdline", unique_marker(), "--user",
                       "no-such-user-" + unique_marker("")[-6:], timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no user named" in result.stdout + result.stderr


def test_a_selector_that_matches_nothing_is_target_not_found(state_dir: Path) -> None:
    result = run_chaos("inject", "process.suspend", "--cmdline", unique_marker(), "--for", "1s",
                       timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "no running process matches" in output
    assert "Traceback" not in output


# --- count and percent, chosen reproducibly from the seed


def kill_some(tmp_path: Path, marker: str, how: str, seed: int) -> dict[str, Any]:
    path = tmp_path / f"kill-{marker}.yaml"
    path.write_text(f"""title: kill some of the marked processes
faults:
  - type: process.kill
    target: {{process: {{cmdline: "{marker}"}}, {how}}}
limits: {{max_targets: 6}}
""")
    result = run_chaos("run", "-q", "--seed", str(seed), str(path), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    (journal,) = [j for j in journals(tmp_path / "runs") if j["experiment"]["source"] == str(path)]
    return journal


def chosen_ranks(procs: list[psutil.Process]) -> list[int]:
    """Which of the processes (ranked by pid) are dead."""
    by_pid = sorted(procs, key=lambda p: p.pid)
    assert wait_until(lambda: alive(by_pid).count(False) > 0, 5) is not None
    return [rank for rank, p in enumerate(by_pid) if not is_running(p.pid)]


def test_count_chooses_the_same_targets_for_the_same_seed(tmp_path: Path, state_dir: Path,
                                                          spawn_sleepers: Any) -> None:
    rounds = []
    for _ in range(2):
        marker = unique_marker()
        procs = spawn_sleepers(6, marker)
        journal = kill_some(tmp_path, marker, "count: 2", seed=1234)
        assert journal["seed"] == 1234
        ranks = chosen_ranks(procs)
        assert len(ranks) == 2
        killed = sorted(inj["identity"]["pid"] for inj in journal["injections"])
        assert killed == sorted(p.pid for p in procs if not is_running(p.pid))
        rounds.append(ranks)
    assert rounds[0] == rounds[1]


def test_percent_chooses_a_rounded_up_share_reproducibly(tmp_path: Path, state_dir: Path,
                                                         spawn_sleepers: Any) -> None:
    rounds = []
    for _ in range(2):
        marker = unique_marker()
        procs = spawn_sleepers(5, marker)
        kill_some(tmp_path, marker, "percent: 50%", seed=99)
        ranks = chosen_ranks(procs)
        assert len(ranks) == 3  # 50% of 5, rounded up
        rounds.append(ranks)
    assert rounds[0] == rounds[1]


def test_different_seeds_choose_differently(tmp_path: Path, state_dir: Path,
                                            spawn_sleepers: Any) -> None:
    choices = set()
    for seed in range(6):
        marker = unique_marker()
        procs = spawn_sleepers(6, marker)
        kill_some(tmp_path, marker, "count: 1", seed=seed)
        choices.add(tuple(chosen_ranks(procs)))
    assert len(choices) > 1, "six seeds all chose the same process: the seed is not used"


# --- guards


def refused(result: Any) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    return output


def test_pid_1_is_refused(state_dir: Path) -> None:
    output = refused(run_chaos("inject", "process.suspend", "--pid", "1", "--for", "1s",
                               timeout=60))
    assert "refusing to target pid 1" in output
    assert "PID 1" in output
    assert is_running(1)


def test_the_callers_own_ancestors_are_refused(state_dir: Path) -> None:
    me = os.getpid()  # pytest: the parent of the chaos process, so one of its ancestors
    output = refused(run_chaos("inject", "process.suspend", "--pid", str(me), "--for", "1s",
                               timeout=60))
    assert f"refusing to target pid {me}" in output
    assert "ancestors" in output


def test_more_matches_than_max_targets_are_refused(state_dir: Path,
                                                   spawn_sleepers: Any) -> None:
    marker = unique_marker()
    procs = spawn_sleepers(3, marker)
    output = refused(run_chaos("inject", "process.suspend", "--cmdline", marker, "--for", "1s",
                               "--max-targets", "2", timeout=60))
    assert "matches 3 targets" in output and "max_targets (2)" in output
    assert all(p.status() != psutil.STATUS_STOPPED for p in procs)
    assert all(alive(procs))


def test_a_refused_plan_leaves_nothing_in_the_ledger(state_dir: Path) -> None:
    refused(run_chaos("inject", "process.kill", "--pid", "1", timeout=60))
    status = run_chaos("status", "--json", timeout=60)
    assert status.returncode == 0
    assert status_injections(status) == []


def test_the_chosen_signal_reaches_only_the_chosen_process(state_dir: Path,
                                                          spawn_sleepers: Any) -> None:
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGUSR1, lambda *_: sys.exit(42))\n"
            "while True: time.sleep(0.05)")
    marker = unique_marker()
    target, bystander = spawn_sleepers(2, argv=[sys.executable, "-c", code, marker])
    for proc in (target, bystander):  # both have installed their handler, per /proc
        assert wait_until(lambda p=proc: catches(p.pid, signal.SIGUSR1), 10) is not None
    result = run_chaos("inject", "process.kill", "--pid", str(target.pid), "--signal", "USR1",
                       timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert wait_until(lambda: not is_running(target.pid), 5) is not None
    assert os.waitpid(target.pid, 0)[1] >> 8 == 42  # exited through its SIGUSR1 handler
    assert is_running(bystander.pid)


def catches(pid: int, sig: signal.Signals) -> bool:
    """Whether the process has a handler for `sig`: the SigCgt mask in /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    return False


def test_kill_refuses_a_stopping_signal(state_dir: Path, sleeper: psutil.Process) -> None:
    result = run_chaos("inject", "process.kill", "--pid", str(sleeper.pid), "--signal", "STOP",
                       timeout=60)
    assert result.returncode == 2
    assert "--signal" in result.stderr and "'STOP'" in result.stderr
    assert is_running(sleeper.pid)
