"""Resource faults hold what they promise, measured from outside the runner, and let go on revert.

The runner is the real CLI (`chaos inject ...`) in a subprocess. CPU is the workers' own CPU time
from /proc/PID/stat over wall time (what the fault controls; the machine's total load depends on
whatever else runs); memory is the worker's RSS per psutil; disk is the filesystem's free space
per statvfs, on a tmpfs mounted for the test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, chaos_cmd, wait_until

WORKER = "chaos.adapters.local.burner"
TICK = os.sysconf("SC_CLK_TCK")


def workers_of(runner: subprocess.Popen[bytes]) -> list[psutil.Process]:
    try:
        children = psutil.Process(runner.pid).children()
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if WORKER in child.cmdline():
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def cpu_seconds(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def waiting_seconds(pid: int) -> float:
    """How long the kernel kept the worker runnable but off every CPU (busy machine): time the
    worker could not burn, which is no fault of its control loop."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


@pytest.fixture
def inject(state_dir: Path) -> Iterator[callable]:  # type: ignore[valid-type]
    """Start `chaos inject ARGS` in the background; every runner is stopped when the test ends."""
    runners: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        runner = subprocess.Popen(chaos_cmd("inject", *args), cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        if runner.poll() is None:
            runner.send_signal(signal.SIGINT)  # a clean revert
            try:
                runner.wait(20)
            except subprocess.TimeoutExpired:
                runner.kill()
                runner.wait(5)
        if runner.stdout is not None:
            runner.stdout.close()


def wait_for_workers(runner: subprocess.Popen[bytes], count: int = 1) -> list[psutil.Process]:
    assert wait_until(lambda: len(workers_of(runner)) >= count, 20) is not None, \
        "no resource worker started"
    return workers_of(runner)


def finished(runner: subprocess.Popen[bytes], timeout: float = 30) -> str:
    out, _ = runner.communicate(timeout=timeout)
    return out.decode(errors="replace")


@pytest.mark.parametrize("load", [25, 50, 80])
def test_cpu_load_on_one_core_is_within_5_points(inject, load: int) -> None:  # type: ignore[no-untyped-def]
    runner = inject("resource.cpu", "--load", f"{load}%", "--cores", "1", "--for", "6s")
    [worker] = wait_for_workers(runner)
    time.sleep(1.0)  # the first period settles the control loop
    cpu0, wait0, wall0 = cpu_seconds(worker.pid), waiting_seconds(worker.pid), time.monotonic()
    time.sleep(3.0)
    wall = time.monotonic() - wall0
    achieved = (cpu_seconds(worker.pid) - cpu0) / wall * 100
    starved = (waiting_seconds(worker.pid) - wait0) / wall * 100
    assert load - 5 - starved <= achieved <= load + 5, \
        f"asked for {load}%, the worker used {achieved:.1f}% (kept off the CPU {starved:.1f}%)"
    out = finished(runner)
    assert runner.returncode == 0, out
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE


def test_cpu_on_all_cores_starts_one_pinned_worker_per_core(inject) -> None:  # type: ignore[no-untyped-def]
    cores = sorted(os.sched_getaffinity(0))
    runner = inject("resource.cpu", "--load", "20%", "--pin", "--for", "3s")
    workers = wait_for_workers(runner, len(cores))
    pinned = lambda: sorted(c for w in workers for c in w.cpu_affinity())
    assert wait_until(lambda: pinned() == cores, 5) is not None, pinned()
    out = finished(runner)
    assert runner.returncode == 0, out
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)


def test_cpu_ramp_rises_to_the_load(inject) -> None:  # type: ignore[no-untyped-def]
    runner = inject("resource.cpu", "--load", "80%", "--cores", "1", "--ramp", "4s",
                    "--for", "6s")
    [worker] = wait_for_workers(runner)
    cpu0, wall0 = cpu_seconds(worker.pid), time.monotonic()
    time.sleep(1.5)
    early = (cpu_seconds(worker.pid) - cpu0) / (time.monotonic() - wall0)
    time.sleep(2.8)
    cpu1, wait1, wall1 = cpu_seconds(worker.pid), waiting_seconds(worker.pid), time.monotonic()
    time.sleep(1.2)
    wall = time.monotonic() - wall1
    late = (cpu_seconds(worker.pid) - cpu1) / wall
    starved = (waiting_seconds(worker.pid) - wait1) / wall
    assert early < 0.35 and late > 0.65 - starved, (early, late, starved)
    finished(runner)


@pytest.mark.parametrize("amount", ["256MiB", "2%"])
def test_memory_is_resident_within_3_percent(inject, amount: str) -> None:  # type: ignore[no-untyped-def]
    target = (256 << 20) if amount.endswith("B") else 0.02 * psutil.virtual_memory().total
    runner = inject("resource.memory", "--amount", amount, "--for", "4s")
    [worker] = wait_for_workers(runner)
    assert wait_until(lambda: worker.memory_info().rss >= 0.97 * target, 15) is not None
    time.sleep(0.5)
    rss = worker.memory_info().rss
    assert abs(rss - target) <= 0.03 * target, f"RSS {rss} for a target of {target:.0f}"
    out = finished(runner)
    assert runner.returncode == 0, out
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE


def test_memory_fill_to_tops_up_the_hosts_used_memory(inject) -> None:  # type: ignore[no-untyped-def]
    mem = psutil.virtual_memory()
    top_up = 600 << 20
    runner = inject("resource.memory", "--amount", str(mem.total - mem.available + top_up),
                    "--mode", "fill_to", "--for", "5s")
    [worker] = wait_for_workers(runner)
    assert wait_until(lambda: worker.memory_info().rss >= top_up / 2, 4) is not None
    # Other tests allocate and free memory meanwhile, so the top-up is judged loosely; read as
    # "allocate", the amount would be gigabytes.
    assert worker.memory_info().rss <= 1.5 * top_up
    finished(runner)


@pytest.mark.parametrize("how,free_after", [("--reserve=16MiB", 16 << 20),
                                            ("--percent=75%", 16 << 20),
                                            ("--size=40MiB", (64 - 40) << 20)])
def test_disk_fill_leaves_the_target_free_space_within_1_percent(
    inject, small_tmpfs: Path, how: str, free_after: int  # type: ignore[no-untyped-def]
) -> None:
    def free() -> int:
        st = os.statvfs(small_tmpfs)
        return st.f_bavail * st.f_frsize

    before = free()
    runner = inject("resource.disk_fill", "--path", str(small_tmpfs), how, "--for", "3s")
    assert wait_until(lambda: any(small_tmpfs.glob("chaos-fill-*")), 20) is not None
    assert wait_until(lambda: abs(free() - free_after) <= 0.01 * free_after, 5) is not None, \
        f"free {free()} instead of {free_after}"
    out = finished(runner)
    assert runner.returncode == 0, out
    assert not list(small_tmpfs.glob("chaos-fill-*"))
    assert free() == before


def test_io_workers_write_and_remove_their_files(inject, small_tmpfs: Path) -> None:  # type: ignore[no-untyped-def]
    runner = inject("resource.io", "--path", str(small_tmpfs), "--file-size", "4MiB",
                    "--block-size", "64KiB", "--workers", "2", "--for", "3s")
    workers = wait_for_workers(runner, 2)
    time.sleep(1.0)
    written = [w.io_counters().write_chars for w in workers]
    assert all(n > 4 << 20 for n in written), written
    assert len(list(small_tmpfs.glob("chaos-io-*"))) == 2
    out = finished(runner)
    assert runner.returncode == 0, out
    assert not list(small_tmpfs.glob("chaos-io-*"))


def test_descriptors_and_threads_are_held(inject) -> None:  # type: ignore[no-untyped-def]
    fds = inject("resource.fds", "--descriptors", "3000", "--for", "3s")
    threads = inject("resource.threads", "--threads", "300", "--for", "3s")
    [fd_worker] = wait_for_workers(fds)
    [thread_worker] = wait_for_workers(threads)
    assert wait_until(lambda: fd_worker.num_fds() >= 3000, 10) is not None
    assert wait_until(lambda: thread_worker.num_threads() >= 301, 10) is not None
    for runner in (fds, threads):
        out = finished(runner)
        assert runner.returncode == 0, out


def test_the_cpu_saturation_example_runs_and_holds(state_dir: Path) -> None:
    from tests.conftest import free_port, run_chaos

    result = run_chaos("run", "experiments/cpu-saturation.yaml", "--var",
                       f"port={free_port()}", timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "busy-cores (resource.cpu)" in result.stdout and "reverted" in result.stdout


@pytest.fixture
def throttled_cgroup(sleeper: psutil.Process) -> Iterator[tuple[psutil.Process, str]]:
    """A sleeper in its own cgroup v1 `cpu` group with a 20% CPU quota (root only)."""
    base = Path("/sys/fs/cgroup/cpu")
    if os.geteuid() != 0 or not (base / "cpu.cfs_quota_us").exists():
        pytest.skip("needs root and a cgroup v1 cpu hierarchy at /sys/fs/cgroup/cpu")
    group = base / f"chaos-test-{os.getpid()}-{time.monotonic_ns()}"
    group.mkdir()
    try:
        (group / "cpu.cfs_quota_us").write_text("20000")  # of a 100 ms period
        (group / "cgroup.procs").write_text(str(sleeper.pid))
        yield sleeper, "/" + group.name
    finally:
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        wait_until(lambda: not (group / "cgroup.procs").read_text().strip(), 5)
        group.rmdir()


def test_cpu_workers_join_the_target_process_cgroup_and_share_its_quota(
    inject, throttled_cgroup: tuple[psutil.Process, str]  # type: ignore[no-untyped-def]
) -> None:
    target, group = throttled_cgroup
    runner = inject("resource.cpu", "--pid", str(target.pid), "--load", "80%", "--cores", "1",
                    "--for", "5s")
    [worker] = wait_for_workers(runner)
    in_group = lambda: f":cpu:{group}" in Path(f"/proc/{worker.pid}/cgroup").read_text()
    assert wait_until(in_group, 5) is not None, Path(f"/proc/{worker.pid}/cgroup").read_text()
    time.sleep(0.5)
    cpu0, wall0 = cpu_seconds(worker.pid), time.monotonic()
    time.sleep(2.0)
    achieved = (cpu_seconds(worker.pid) - cpu0) / (time.monotonic() - wall0) * 100
    assert achieved <= 25, f"the target's 20% quota should cap the worker, it used {achieved:.0f}%"
    out = finished(runner)
    assert runner.returncode == 0, out
