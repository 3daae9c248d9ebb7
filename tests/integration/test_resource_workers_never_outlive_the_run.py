"""No resource worker or fill file outlives its experiment: not after SIGKILL of the runner, nor of
the runner and the watchdog, nor Ctrl-C; and a worker ends by itself at its deadline or when its
parent dies, whoever started it.

Workers are found and watched from outside (psutil, /proc); files through the filesystem.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, chaos_cmd, open_injections, run_chaos, wait_until

WORKER = "chaos.adapters.local.burner"


def workers(marker: str) -> list[psutil.Process]:
    """Live (non-zombie) workers whose command line holds `marker`."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        try:
            if WORKER in cmd and marker in cmd and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def experiment(tmp_path: Path, body: str, duration: str = "30s") -> Path:
    path = tmp_path / "resource.yaml"
    path.write_text(f"title: resource workers\nfaults:\n  - {body}\n    duration: {duration}\n")
    return path


CPU = "type: resource.cpu\n    target: {host: local}\n    with: {load: 30%, cores: 1}"


def start_runner(path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(chaos_cmd("run", "-q", str(path)), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def watchdog_of(runner_pid: int) -> psutil.Process | None:
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "chaos.safety.watchdog" in cmd and str(runner_pid) in cmd:
            return proc
    return None


def kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def test_runner_killed_workers_end_and_the_watchdog_closes_the_entry(
    tmp_path: Path, state_dir: Path
) -> None:
    runner = start_runner(experiment(tmp_path, CPU))
    marker = str(runner.pid)
    try:
        assert wait_until(lambda: workers(marker), 20) is not None
        runner.kill()
        runner.wait(5)
        assert wait_until(lambda: not workers(marker), 2) is not None, workers(marker)
        assert wait_until(lambda: not open_injections(), 10, 0.2) is not None
    finally:
        runner.kill()
        runner.wait(5)
        kill_all(workers(marker))


def test_runner_and_watchdog_killed_workers_still_end(tmp_path: Path, state_dir: Path) -> None:
    runner = start_runner(experiment(tmp_path, CPU, duration="4s"))
    marker = str(runner.pid)
    try:
        assert wait_until(lambda: workers(marker), 20) is not None
        watchdog = watchdog_of(runner.pid)
        assert watchdog is not None
        watchdog.kill()
        watchdog.wait(5)
        runner.kill()
        runner.wait(5)
        # the kernel tells them their parent died; at the latest their own deadline ends them
        assert wait_until(lambda: not workers(marker), 4 + 5.4) is not None, workers(marker)
        assert open_injections(), "nobody reverted: the entry stays open for chaos recover"
        assert run_chaos("recover").returncode == 0
        assert not open_injections()
    finally:
        runner.kill()
        runner.wait(5)
        kill_all(workers(marker))


def test_disk_fill_file_is_listed_by_status_and_removed_by_recover(
    tmp_path: Path, state_dir: Path, small_tmpfs: Path
) -> None:
    body = (f"type: resource.disk_fill\n    target: {{host: local}}\n"
            f"    with: {{path: {small_tmpfs}, reserve: 8MiB}}")
    runner = start_runner(experiment(tmp_path, body))
    try:
        assert wait_until(lambda: list(small_tmpfs.glob("chaos-fill-*")), 20) is not None
        [fill] = small_tmpfs.glob("chaos-fill-*")
        watchdog = watchdog_of(runner.pid)
        assert watchdog is not None
        watchdog.kill()
        runner.kill()
        runner.wait(5)
        watchdog.wait(5)
        assert fill.exists(), "nobody is left to remove it"
        status = run_chaos("status")
        assert str(fill) in status.stdout and "RUNNER GONE" in status.stdout, status.stdout
        recovered = run_chaos("recover")
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
        assert not fill.exists()
        assert not open_injections()
    finally:
        runner.kill()
        runner.wait(5)
        for path in small_tmpfs.glob("chaos-fill-*"):
            path.unlink()


def test_ctrl_c_reverts_memory_and_exits_130(state_dir: Path) -> None:
    runner = subprocess.Popen(chaos_cmd("inject", "resource.memory", "--amount", "64MiB",
                                        "--for", "60s"), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = str(runner.pid)
    try:
        assert wait_until(lambda: workers(marker), 20) is not None
        runner.send_signal(signal.SIGINT)
        assert runner.wait(20) == 130
        assert not workers(marker)
        assert not open_injections()
    finally:
        runner.kill()
        runner.wait(5)
        kill_all(workers(marker))


def worker_argv(marker: str, deadline: float, parent: object) -> list[str]:
    return [sys.executable, "-m", WORKER, "--tag", marker, "--deadline", str(deadline),
            "--parent", str(parent), "cpu", "--load", "0.1"]


def test_a_worker_ends_at_its_own_deadline() -> None:
    marker = f"deadline-{os.getpid()}-{time.monotonic_ns()}"
    deadline = time.time() + 1.0
    proc = subprocess.Popen(worker_argv(marker, deadline, os.getpid()), stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        assert proc.wait(5) == 0
        assert time.time() - deadline < 0.5, "it outlived its deadline"
    finally:
        proc.kill()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_worker_ends_when_its_parent_dies_even_without_the_kernels_signal() -> None:
    """A parent that did not set PR_SET_PDEATHSIG: the worker notices its parent pid change."""
    marker = f"orphan-{os.getpid()}-{time.monotonic_ns()}"
    argv = worker_argv(marker, time.time() + 60, "PARENT")
    code = (f"import os, subprocess, time\nargv = {argv!r}\n"
            "argv[argv.index('PARENT')] = str(os.getpid())\n"
            "subprocess.Popen(argv)\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        assert wait_until(lambda: workers(marker), 10) is not None
        parent.kill()
        parent.wait(5)
        took = wait_until(lambda: not workers(marker), 2)
        # the worker checks its parent every 100 ms; the rest is a loaded machine's slack
        assert took is not None and took < 1.0, f"orphaned worker still running: {took}"
    finally:
        parent.kill()
        parent.wait(5)
        kill_all(workers(marker))


@pytest.mark.parametrize("point", ["after_intent", "after_inject", "after_applied"])
def test_watchdog_reverts_from_every_step_of_the_protocol(
    tmp_path: Path, state_dir: Path, small_tmpfs: Path, point: str
) -> None:
    body = (f"type: resource.disk_fill\n    target: {{host: local}}\n"
            f"    with: {{path: {small_tmpfs}, size: 8MiB}}")
    env = {**os.environ, "CHAOS_FAILPOINTS": point}
    runner = subprocess.Popen(chaos_cmd("run", "-q", str(experiment(tmp_path, body, "2s"))),
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        assert runner.wait(30) == -signal.SIGKILL, "the failpoint did not fire"
        assert wait_until(lambda: not open_injections(), 10, 0.2) is not None
        assert not list(small_tmpfs.glob("chaos-fill-*"))
    finally:
        runner.kill()
        runner.wait(5)
        for path in small_tmpfs.glob("chaos-fill-*"):
            path.unlink()
