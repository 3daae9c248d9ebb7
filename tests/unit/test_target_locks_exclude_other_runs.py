"""Per-target locks: one locked byte per target in one file. Two runs exclude each other even in
one process (a game day), a released or dead holder frees the target, keys do not collide."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chaos.errors import TargetLocked
from chaos.safety.locks import TargetLocks


def test_two_runs_in_one_process_exclude_each_other(tmp_path: Path) -> None:
    first, second = TargetLocks(tmp_path, "run-a"), TargetLocks(tmp_path, "run-b")
    for i in range(1000):
        first.acquire(f"process:{i}:1.00", f"pid {i}")
    with pytest.raises(TargetLocked, match="pid 7 is already targeted by"):
        second.acquire("process:7:1.00", "pid 7")
    second.acquire("process:1000:1.00", "pid 1000")  # another target is free
    first.release_all()
    second.acquire("process:7:1.00", "pid 7")
    second.release_all()
    assert [p.name for p in (tmp_path / "locks").iterdir()] == ["targets.lock"]


def test_a_dead_holder_frees_its_targets(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from chaos.safety.locks import TargetLocks;"
            "TargetLocks(Path(sys.argv[1]), 'dead').acquire('process:7:1.00', 'pid 7');"
            "print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(TargetLocked):
            TargetLocks(tmp_path, "alive").acquire("process:7:1.00", "pid 7")
    finally:
        holder.kill()
        holder.communicate(timeout=10)
    alive = TargetLocks(tmp_path, "alive")
    alive.acquire("process:7:1.00", "pid 7")
    alive.release_all()
