"""resource.disk_fill on a real container: the file is in the container's filesystem.

Observed from outside the runner with `docker exec` (`ls`, `df` in the container's own mount
namespace), `docker inspect`, and `chaos status --json`. The runner killed with SIGKILL leaves
the file to the watchdog; a container removed mid-fault is "gone" for the watchdog, which then
closes the ledger and ends; a paused or stopped container is refused with exit 2.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import ENGINES, ROOT, chaos_cmd, open_injections, run_chaos, wait_until

pytestmark = pytest.mark.root

TMPFS = ("--init", "--tmpfs", "/fill:size=32m")  # the container's own, small filesystem


def inject(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(chaos_cmd("inject", "resource.disk_fill", *argv), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def fill_files(engine: Any, name: str, path: str = "/fill") -> list[str]:
    """The chaos files in `path`, listed by `ls` inside the container."""
    out = engine.docker("exec", name, "ls", path, check=False).stdout
    return [f for f in out.split() if f.startswith("chaos-fill-")]


def free_kib(engine: Any, name: str, path: str = "/fill") -> int:
    """Free space of `path`'s filesystem as `df` inside the container sees it."""
    line = engine.docker("exec", name, "busybox", "df", "-k", path).stdout.splitlines()[-1]
    return int(line.split()[3])


def watchdog_of(runner: subprocess.Popen[str]) -> psutil.Process:
    (found,) = [p for p in psutil.process_iter(["cmdline"])
                if "chaos.safety.watchdog" in (p.info["cmdline"] or [])
                and str(runner.pid) in (p.info["cmdline"] or [])]
    return found


def outcomes(state_dir: Path) -> list[str]:
    found = []
    for path in sorted((state_dir / "adhoc").glob("*/journal.json")):
        journal = json.loads(path.read_text())
        found += [str(i.get("outcome")) for i in journal.get("injections", [])]
    return found


@pytest.mark.parametrize("containers", ENGINES, indirect=True)
def test_the_file_fills_the_containers_filesystem_and_goes_at_the_end(
    containers: Any, state_dir: Path
) -> None:
    name = containers.run("sleep", "100000", options=TMPFS)
    engine = containers.engine
    before = free_kib(engine, name)
    proc = inject("--container", name, "--path", "/fill", "--reserve", "4MiB", "--for", "3s")
    try:
        assert wait_until(lambda: fill_files(engine, name), 30) is not None
        (file,) = fill_files(engine, name)
        assert free_kib(engine, name) <= 4 * 1024 < before
        assert not Path("/fill", file).exists()  # not the host's filesystem
    finally:
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert fill_files(engine, name) == []
    assert free_kib(engine, name) == before
    assert open_injections() == []


def test_a_file_in_the_writable_layer_is_removed_after_a_restart(
    containers: Any, state_dir: Path
) -> None:
    name = containers.run("sleep", "100000", options=("--init",))
    engine = containers.engine
    proc = inject("--container", name, "--path", "/tmp", "--size", "1MiB", "--for", "4s")
    try:
        assert wait_until(lambda: fill_files(engine, name, "/tmp"), 30) is not None
        engine.docker("restart", "-t", "1", name)
        assert fill_files(engine, name, "/tmp"), "the layer keeps the file across a restart"
    finally:
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert fill_files(engine, name, "/tmp") == []
    assert outcomes(state_dir) == ["reverted"]


def test_the_watchdog_removes_the_file_when_the_runner_is_killed(
    containers: Any, state_dir: Path
) -> None:
    name = containers.run("sleep", "100000", options=TMPFS)
    engine = containers.engine
    proc = inject("--container", name, "--path", "/fill", "--size", "8MiB", "--for", "5m")
    try:
        assert wait_until(lambda: fill_files(engine, name), 30) is not None
        assert wait_until(lambda: open_injections(), 30) is not None
        watchdog = watchdog_of(proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert wait_until(lambda: not fill_files(engine, name), 60) is not None
        assert wait_until(lambda: open_injections() == [], 30) is not None
        watchdog.wait(30)  # its work done, it ends
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def test_the_watchdog_counts_a_removed_container_as_reverted_and_ends(
    containers: Any, state_dir: Path
) -> None:
    name = containers.run("sleep", "100000", options=TMPFS)
    engine = containers.engine
    proc = inject("--container", name, "--path", "/fill", "--size", "8MiB", "--for", "5m")
    try:
        assert wait_until(lambda: fill_files(engine, name), 30) is not None
        watchdog = watchdog_of(proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        engine.docker("rm", "-f", name)
        assert wait_until(lambda: open_injections() == [], 60) is not None
        watchdog.wait(30)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert run_chaos("recover", timeout=60).stdout.strip() == "nothing to recover"


def test_a_paused_or_stopped_container_is_refused(containers: Any, state_dir: Path) -> None:
    engine = containers.engine
    paused = containers.run("sleep", "100000", options=TMPFS)
    engine.docker("pause", paused)
    try:
        refused = run_chaos("inject", "resource.disk_fill", "--container", paused, "--path",
                            "/fill", "--size", "1MiB", "--for", "5s", timeout=60)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert f"container {paused} is paused" in refused.stdout + refused.stderr
        assert "docker unpause" in refused.stdout + refused.stderr
    finally:
        engine.docker("unpause", paused)
    assert fill_files(engine, paused) == []
    stopped = containers.run("sleep", "100000", options=TMPFS)
    engine.docker("stop", "-t", "1", stopped)
    refused = run_chaos("inject", "resource.disk_fill", "--container", stopped, "--path",
                        "/fill", "--size", "1MiB", "--for", "5s", timeout=60)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "no matching container is running" in refused.stdout + refused.stderr
    assert open_injections() == []


def test_a_path_through_a_symbolic_link_is_refused(containers: Any, state_dir: Path) -> None:
    name = containers.run("sh", "-c", "busybox ln -s /etc /tmp/out && exec sleep 100000",
                          options=("--init",))
    engine = containers.engine
    assert wait_until(lambda: engine.docker("exec", name, "ls", "/tmp/out",
                                            check=False).returncode == 0, 30) is not None
    refused = run_chaos("inject", "resource.disk_fill", "--container", name, "--path",
                        "/tmp/out", "--size", "1MiB", "--for", "5s", timeout=60)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "/tmp/out in container" in refused.stdout + refused.stderr
    assert "symbolic link" in refused.stdout + refused.stderr


@pytest.mark.parametrize("containers", ENGINES, indirect=True)
def test_recover_removes_the_file_from_a_stopped_containers_layer(
    containers: Any, state_dir: Path
) -> None:
    name = containers.run("sleep", "100000", options=("--init",))
    engine = containers.engine
    proc = inject("--container", name, "--path", "/tmp", "--size", "1MiB", "--for", "5m")
    try:
        assert wait_until(lambda: fill_files(engine, name, "/tmp"), 30) is not None
        for victim in (watchdog_of(proc), psutil.Process(proc.pid)):
            victim.kill()
            victim.wait(10)
        engine.docker("stop", "-t", "1", name)
        recovered = run_chaos("recover", timeout=60)
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    engine.docker("start", name)
    assert fill_files(engine, name, "/tmp") == []
    assert open_injections() == []


def ledger_outcomes(state_dir: Path) -> list[str]:
    """The `reverted` outcomes in the ledger files, as the watchdog wrote them."""
    found = []
    for path in sorted((state_dir / "ledger").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("event") == "reverted":
                found.append(str(record.get("outcome")))
    return found


@pytest.mark.parametrize("fault", [
    ("container.pause",),
    ("network.bandwidth", "--rate", "64KiB"),
    ("resource.cpu", "--load", "10%", "--cores", "1"),
], ids=lambda f: f[0])
def test_the_watchdog_finds_a_removed_container_gone_for_every_kind_of_fault(
    containers: Any, state_dir: Path, fault: tuple[str, ...]
) -> None:
    name = containers.run("sleep", "100000", options=("--init",))
    engine = containers.engine
    proc = subprocess.Popen(chaos_cmd("inject", *fault, "--container", name, "--for", "5m"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        assert wait_until(lambda: [r for r in open_injections() if r["state"] == "applied"],
                          60) is not None
        watchdog = watchdog_of(proc)
        engine.docker("rm", "-f", name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert wait_until(lambda: open_injections() == [], 60) is not None
        watchdog.wait(30)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    # Burner workers joined the container's cgroups but run on the host: removing the
    # container does not end them, so the watchdog may still find (and kill) them.
    expected = {"gone", "reverted"} if fault[0].startswith("resource.") else {"gone"}
    (outcome,) = ledger_outcomes(state_dir)
    assert outcome in expected
    assert wait_until(lambda: not workers_of(proc.pid), 30) is not None


def workers_of(runner: int) -> list[int]:
    """Burner workers the runner started (their command line names it as --parent)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "chaos.adapters.local.burner" in cmd and str(runner) in cmd:
            found.append(p.pid)
    return found
