"""No container fault outlives a runner killed with SIGKILL.

One experiment holds three faults on two real containers: container.pause on one, and on the
other network.bandwidth (tc in its network namespace) and resource.cpu (a burner worker in its
cgroup). The runner is killed at every step of the injection protocol (failpoints), at moments
of the hold, and around the revert (timers): 20 points. From outside the runner, the watchdog
must leave: `docker inspect` State.Paused false, `nsenter ... tc qdisc show` / `nft list
ruleset` equal to their snapshots, no worker in the container's cgroup, nothing open in the
ledger.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import ROOT, chaos_cmd, run_chaos, status_injections, unique_marker, wait_until

pytestmark = pytest.mark.root

BUDGET = 10.0  # correctness, not speed: benchmarks/containers.py measures how fast
WORKER = "chaos.adapters.local.burner"
FAILPOINTS = ["after_intent", "after_inject", "after_applied", "before_revert", "after_revert",
              "after_reverted", "during_cleanup"]
HOLD_DELAYS = [0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8]
END_OFFSETS = [-0.05, -0.01, 0.0, 0.01, 0.02, 0.05]
# Podman (its Docker-compatible socket): a few of the points, the same promise
PODMAN_FAILPOINTS = ["after_applied", "before_revert"]


@pytest.fixture(scope="module")
def engine(request: pytest.FixtureRequest) -> Any:
    """Docker's engine, or the one an indirect parameter names ("podman")."""
    return request.getfixturevalue(f"{getattr(request, 'param', 'docker')}_engine")


@pytest.fixture(scope="module")
def pair(engine: Any) -> Iterator[dict[str, str]]:
    """Two running containers for the whole module: `frozen` (pause), `loaded` (tc + cpu)."""
    names = {role: unique_marker(f"chaos-kill-{role}") for role in ("frozen", "loaded")}
    for name in names.values():
        engine.run(name, "sleep", "100000", options=("--init",))
    yield names
    engine.remove(*names.values())


@pytest.fixture
def world(pair: dict[str, str], engine: Any, state_dir: Path,
          monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    loaded_pid = engine.inspect(pair["loaded"], "{{.State.Pid}}")
    return {"engine": engine, **pair, "pid": loaded_pid,
            "before": netns_state(loaded_pid)}


def netns_state(pid: str) -> str:
    out = []
    for argv in (["tc", "qdisc", "show"], ["nft", "list", "ruleset"]):
        out.append(subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "--", *argv],
                                  capture_output=True, text=True, timeout=20).stdout)
    return "\n".join(out)


def workers() -> list[int]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if WORKER in (proc.info["cmdline"] or []):
            found.append(proc.pid)
    return found


def in_cgroup_of(pid: str) -> set[int]:
    procs: set[int] = set()
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, _, path = line.split(":", 2)
        for mount in Path("/sys/fs/cgroup").iterdir():
            file = Path(str(mount) + path, "cgroup.procs")
            if file.exists():
                procs |= {int(x) for x in file.read_text().split()}
    return procs


def experiment(tmp_path: Path, world: dict[str, Any], duration: str) -> Path:
    path = tmp_path / "containers.yaml"
    path.write_text(f"""title: pause, shape and load two containers
faults:
  - type: container.pause
    target: {{container: {{name: {world['frozen']}}}}}
    duration: {duration}
  - type: network.bandwidth
    target: {{container: {{name: {world['loaded']}}}}}
    with: {{rate: 64KiB}}
    duration: {duration}
  - type: resource.cpu
    target: {{container: {{name: {world['loaded']}}}}}
    with: {{load: 20%, cores: 1}}
    duration: {duration}
""")
    return path


def start_runner(path: Path, failpoints: str = "") -> subprocess.Popen[bytes]:
    env = {**os.environ, "CHAOS_FAILPOINTS": failpoints}
    with open(path.with_suffix(".log"), "wb") as log:
        return subprocess.Popen(chaos_cmd("run", "-q", str(path)), env=env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)


def all_injected(world: dict[str, Any]) -> bool:
    return (world["engine"].inspect(world["frozen"], "{{.State.Paused}}") == "true"
            and "ca05:" in netns_state(world["pid"])
            and any(p in in_cgroup_of(world["pid"]) for p in workers()))


def nothing_left(world: dict[str, Any]) -> bool:
    return (world["engine"].inspect(world["frozen"], "{{.State.Paused}}") == "false"
            and netns_state(world["pid"]) == world["before"]
            and not set(workers()) & in_cgroup_of(world["pid"]))


def nothing_open() -> bool:
    result = run_chaos("status", "--json", timeout=30)
    return result.returncode == 0 and status_injections(result) == []


def assert_all_reverted(world: dict[str, Any], path: Path) -> None:
    took = wait_until(lambda: nothing_left(world), BUDGET, 0.05)
    assert took is not None, (
        f"left behind: paused={world['engine'].inspect(world['frozen'], '{{.State.Paused}}')}"
        f" netns={netns_state(world['pid'])!r} workers={workers()}\n"
        + path.with_suffix(".log").read_text())
    assert wait_until(nothing_open, 15, 0.2) is not None


@pytest.mark.parametrize(("engine", "point"),
                         [("docker", p) for p in FAILPOINTS]
                         + [("podman", p) for p in PODMAN_FAILPOINTS], indirect=["engine"])
def test_watchdog_reverts_containers_from_every_step_of_the_protocol(
    tmp_path: Path, world: dict[str, Any], point: str
) -> None:
    path = experiment(tmp_path, world, "1s")
    runner = start_runner(path, failpoints=point)
    try:
        assert runner.wait(60) == -signal.SIGKILL, "the failpoint did not fire"
        assert_all_reverted(world, path)
    finally:
        runner.kill()
        runner.wait(10)


@pytest.mark.parametrize(("engine", "delay"),
                         [("docker", d) for d in HOLD_DELAYS] + [("podman", 0.1)],
                         indirect=["engine"])
def test_watchdog_reverts_containers_when_runner_is_killed_during_the_hold(
    tmp_path: Path, world: dict[str, Any], delay: float
) -> None:
    path = experiment(tmp_path, world, "30s")
    runner = start_runner(path)
    try:
        assert wait_until(lambda: all_injected(world), 60, 0.02) is not None, (
            path.with_suffix(".log").read_text())
        time.sleep(delay)
        runner.kill()
        runner.wait(5)
        assert_all_reverted(world, path)
    finally:
        runner.kill()
        runner.wait(10)


@pytest.mark.parametrize("offset", END_OFFSETS)
def test_watchdog_reverts_containers_when_runner_is_killed_while_reverting(
    tmp_path: Path, world: dict[str, Any], offset: float
) -> None:
    path = experiment(tmp_path, world, "1s")
    runner = start_runner(path)
    try:
        assert wait_until(lambda: all_injected(world), 60, 0.02) is not None, (
            path.with_suffix(".log").read_text())
        seen = time.monotonic()
        time.sleep(max(0.0, 1.0 + offset - (time.monotonic() - seen)))
        runner.kill()
        runner.wait(5)
        assert_all_reverted(world, path)
    finally:
        runner.kill()
        runner.wait(10)
