"""Container faults on a real Docker engine, each effect observed from outside the runner.

`docker inspect` (State.Paused, Running, StartedAt, RestartCount), a client on the published
port, `nsenter` into the container's network namespace (tc, nft), and the container's cgroup
files. The refusals are exit 2 with the container named and what to do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import (
    ENGINES, ROOT, chaos_cmd, free_port, http_ok, run_chaos, status_injections, wait_until)

pytestmark = pytest.mark.root


def inject(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(chaos_cmd("inject", *argv), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def in_netns(pid: str, *argv: str) -> str:
    return subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "--", *argv],
                          capture_output=True, text=True, timeout=20).stdout


def netns_state(engine: Any, name: str) -> str:
    pid = engine.inspect(name, "{{.State.Pid}}")
    return in_netns(pid, "tc", "qdisc", "show") + in_netns(pid, "nft", "list", "ruleset")


def outcomes(state_dir: Path) -> list[str]:
    found = []
    for path in sorted((state_dir / "adhoc").glob("*/journal.json")):
        journal = json.loads(path.read_text())
        found += [str(i.get("outcome")) for i in journal.get("injections", [])]
    return found


@pytest.mark.parametrize("containers", ENGINES, indirect=True)
def test_pause_freezes_the_container_and_the_revert_thaws_it(
    containers: Any, state_dir: Path
) -> None:
    port = free_port()
    name = containers.web(port)
    engine = containers.engine
    proc = inject("container.pause", "--container", name, "--for", "3s")
    try:
        assert wait_until(lambda: engine.inspect(name, "{{.State.Paused}}") == "true",
                          30) is not None
        assert not http_ok(port, timeout=0.5), "a paused container answered"
    finally:
        code, out = finish(proc)
    assert code == 0, out
    assert engine.inspect(name, "{{.State.Paused}}") == "false"
    assert http_ok(port), "the container answers again after the revert"


def test_stop_is_reverted_by_starting_the_container_again(
    containers: Any, state_dir: Path
) -> None:
    port = free_port()
    name = containers.web(port)
    engine = containers.engine
    started = engine.inspect(name, "{{.State.StartedAt}}")
    proc = inject("container.stop", "--container", name, "--grace-period", "1s", "--for", "2s")
    try:
        assert wait_until(lambda: engine.inspect(name, "{{.State.Running}}") == "false",
                          30) is not None
        assert not http_ok(port, timeout=0.5)
    finally:
        code, out = finish(proc)
    assert code == 0, out
    assert engine.inspect(name, "{{.State.Running}}") == "true"
    assert engine.inspect(name, "{{.State.StartedAt}}") != started
    assert wait_until(lambda: http_ok(port), 20) is not None


@pytest.mark.parametrize("containers", ENGINES, indirect=True)
def test_kill_signals_the_main_process_and_the_restart_policy_decides(
    containers: Any, state_dir: Path
) -> None:
    name = containers.run("sleep", "100000", options=("--init", "--restart", "always"))
    engine = containers.engine
    before = engine.inspect(name, "{{.State.StartedAt}}")
    code, out = finish(inject("container.kill", "--container", name, "--signal", "KILL"))
    assert code == 0, out
    assert wait_until(lambda: engine.inspect(name, "{{.RestartCount}}") == "1", 30), out
    assert wait_until(lambda: engine.inspect(name, "{{.State.StartedAt}}") != before, 30)
    assert outcomes(state_dir) == ["nothing"]  # instant: nothing to revert


@pytest.mark.parametrize("containers", ENGINES, indirect=True)
def test_image_selects_by_the_short_name_the_image_was_imported_as(
    containers: Any, state_dir: Path
) -> None:
    name = containers.run("sleep", "100000", options=("--init", "--restart", "always"))
    engine = containers.engine
    code, out = finish(inject("container.kill", "--image", "chaos-test/busybox:1", "--signal",
                              "KILL"))
    assert code == 0, out
    assert wait_until(lambda: engine.inspect(name, "{{.RestartCount}}") == "1", 30), out


@pytest.mark.parametrize("containers", ENGINES, indirect=True)
def test_bandwidth_shapes_only_the_containers_namespace_and_is_restored_exactly(
    containers: Any, state_dir: Path
) -> None:
    name = containers.run("sleep", "100000", options=("--init",))
    engine = containers.engine
    host_before = subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True,
                                 timeout=20).stdout
    before = netns_state(engine, name)
    pid = engine.inspect(name, "{{.State.Pid}}")
    proc = inject("network.bandwidth", "--container", name, "--rate", "64KiB", "--for", "2s")
    try:
        assert wait_until(lambda: "tbf ca05:" in in_netns(pid, "tc", "qdisc", "show", "dev",
                                                         "eth0"), 30) is not None
        host_now = subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True,
                                  timeout=20).stdout
        assert "ca05:" not in host_now, "the host's own devices were shaped"
    finally:
        code, out = finish(proc)
    assert code == 0, out
    assert netns_state(engine, name) == before
    assert "ca05:" not in subprocess.run(["tc", "qdisc", "show"], capture_output=True,
                                         text=True, timeout=20).stdout
    del host_before


@pytest.mark.parametrize("containers", ENGINES, indirect=True)
def test_partition_cuts_the_published_port_from_inside_the_container(
    containers: Any, state_dir: Path
) -> None:
    port = free_port()
    name = containers.web(port)
    engine = containers.engine
    before = netns_state(engine, name)
    pid = engine.inspect(name, "{{.State.Pid}}")
    proc = inject("network.partition", "--container", name, "--port", "8080", "--protocol",
                  "tcp", "--for", "3s")
    try:
        assert wait_until(lambda: "chaos_" in in_netns(pid, "nft", "list", "tables"),
                          30) is not None
        assert not http_ok(port, timeout=0.5), "the published port answered through a partition"
    finally:
        code, out = finish(proc)
    assert code == 0, out
    assert netns_state(engine, name) == before
    assert http_ok(port)


def cgroup_procs(pid: str) -> set[int]:
    """Processes in the cpu cgroup of `pid` (v1 or v2), read from the cgroup filesystem."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(",") or controllers == "":
            for mount in ("/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup"):
                procs = Path(mount + path, "cgroup.procs")
                if procs.exists():
                    return {int(x) for x in procs.read_text().split()}
    raise AssertionError(f"no cgroup.procs for pid {pid}")


@pytest.mark.parametrize("containers", ENGINES, indirect=True)
def test_cpu_workers_run_in_the_containers_cgroup_and_end_with_the_fault(
    containers: Any, state_dir: Path
) -> None:
    name = containers.run("sleep", "100000", options=("--init", "--cpus", "0.5"))
    engine = containers.engine
    pid = engine.inspect(name, "{{.State.Pid}}")
    inside = lambda: {p for p in cgroup_procs(pid)  # noqa: E731
                      if "chaos.adapters.local.burner" in " ".join(_cmdline(p))}
    proc = inject("resource.cpu", "--container", name, "--load", "50%", "--cores", "1",
                  "--for", "3s")
    try:
        assert wait_until(lambda: len(inside()) == 1, 30) is not None
    finally:
        code, out = finish(proc)
    assert code == 0, out
    assert wait_until(lambda: not inside(), 10) is not None, "a worker outlived the fault"


def _cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


@pytest.mark.parametrize("containers", ENGINES, indirect=True)
def test_a_container_restarted_mid_fault_is_gone_and_its_new_run_untouched(
    containers: Any, state_dir: Path
) -> None:
    name = containers.run("sleep", "100000", options=("--init",))
    engine = containers.engine
    pid = engine.inspect(name, "{{.State.Pid}}")
    proc = inject("network.bandwidth", "--container", name, "--rate", "64KiB", "--for", "4s")
    try:
        assert wait_until(lambda: "ca05:" in in_netns(pid, "tc", "qdisc", "show"), 30)
        engine.docker("restart", "-t", "1", name)
    finally:
        code, out = finish(proc)
    assert code == 0, out
    assert outcomes(state_dir) == ["gone"]
    assert "ca05:" not in in_netns(engine.inspect(name, "{{.State.Pid}}"), "tc", "qdisc", "show")


@pytest.mark.parametrize("containers", ENGINES, indirect=True)
def test_compose_selects_one_service_of_a_stack(containers: Any, state_dir: Path) -> None:
    project = f"shop{os.getpid()}"
    labels = lambda service: ("--label", f"com.docker.compose.project={project}",  # noqa: E731
                              "--label", f"com.docker.compose.service={service}")
    web = [containers.run("sleep", "100000", options=("--init", *labels("web")))
           for _ in range(2)]
    containers.run("sleep", "100000", options=("--init", *labels("redis")))
    result = run_chaos("inject", "container.pause", "--compose", f"{project}/web", "--count",
                       "1", "--for", "1s", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    hit = [n for n in web if n in result.stdout]
    assert len(hit) == 1, result.stdout
    assert "redis" not in result.stdout


@pytest.mark.parametrize("case", ["not-running", "host-network", "paused", "paused-cpu",
                                  "no-engine"])
@pytest.mark.parametrize("containers", ENGINES, indirect=True)
def test_refusals_exit_2_naming_the_container_and_what_to_do(
    containers: Any, state_dir: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    engine = containers.engine
    fault = ["container.pause"]
    if case == "not-running":
        name = containers.run("true")
        assert wait_until(lambda: engine.inspect(name, "{{.State.Running}}") == "false", 30)
        expected = "is exited"
    elif case == "host-network":
        name = containers.run("sleep", "100000", options=("--init", "--network", "host"))
        fault, expected = ["network.bandwidth", "--rate", "1MiB"], "would hit the whole host"
    elif case.startswith("paused"):
        name = containers.run("sleep", "100000", options=("--init",))
        engine.docker("pause", name)
        expected = "is paused already"
        if case == "paused-cpu":
            fault = ["resource.cpu", "--load", "10%"]
            expected = "is paused: workers joining its cgroups would be frozen too"
    else:
        name = "anything"
        monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        expected = "cannot reach a container engine at unix:///nonexistent/docker.sock"
    result = run_chaos("inject", *fault, "--container", name, "--for", "2s")
    assert result.returncode == 2, result.stdout + result.stderr
    text = result.stdout + result.stderr
    assert expected in text and "Traceback" not in text
    assert "what to do" in text
    if case.startswith("paused"):
        assert engine.inspect(name, "{{.State.Paused}}") == "true", "left as the user had it"


def test_status_lists_a_pause_and_stop_unpauses_it_then_ctrl_c_exits_clean(
    containers: Any, state_dir: Path
) -> None:
    name = containers.run("sleep", "100000", options=("--init",))
    engine = containers.engine
    proc = inject("container.pause", "--container", name, "--for", "60s")
    try:
        assert wait_until(lambda: engine.inspect(name, "{{.State.Paused}}") == "true",
                          30) is not None
        status = run_chaos("status", "--json", timeout=30)
        rows = status_injections(status)
        assert [r["fault"] for r in rows] == ["container.pause"], rows
        assert name in rows[0]["target"]
        stop = run_chaos("stop", rows[0]["id"], timeout=30)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert engine.inspect(name, "{{.State.Paused}}") == "false", "stop returned first"
        proc.send_signal(signal.SIGINT)
    finally:
        code, out = finish(proc)
    assert code == 130, out
    assert engine.inspect(name, "{{.State.Paused}}") == "false"


@pytest.mark.parametrize("containers", ENGINES, indirect=True)
def test_recover_unpauses_when_runner_and_watchdog_are_both_killed(
    containers: Any, state_dir: Path
) -> None:
    name = containers.run("sleep", "100000", options=("--init",))
    engine = containers.engine
    proc = inject("container.pause", "--container", name, "--for", "60s")
    try:
        assert wait_until(lambda: engine.inspect(name, "{{.State.Paused}}") == "true",
                          30) is not None
        watchdogs = [p for p in psutil.process_iter(["cmdline"])
                     if "chaos.safety.watchdog" in (p.info["cmdline"] or [])
                     and str(proc.pid) in (p.info["cmdline"] or [])]
        assert len(watchdogs) == 1
        for victim in (watchdogs[0], psutil.Process(proc.pid)):
            victim.kill()
            victim.wait(10)
        assert engine.inspect(name, "{{.State.Paused}}") == "true", "nobody should revert it"
        recovered = run_chaos("recover", timeout=60)
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    finally:
        proc.kill()
        proc.wait(10)
        finish(proc)
    assert engine.inspect(name, "{{.State.Paused}}") == "false"
    assert run_chaos("recover").stdout.strip() == "nothing to recover"


def reaches(engine: Any, name: str, address: str) -> bool:
    """From inside `name`'s network namespace (host tools via nsenter): TCP to address:8080."""
    pid = engine.inspect(name, "{{.State.Pid}}")
    code = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "--", "timeout", "2",
                           "bash", "-c", f"exec 3<>/dev/tcp/{address}/8080"],
                          capture_output=True, timeout=20).returncode
    return code == 0


def test_partition_between_two_compose_services_leaves_the_host_reaching_both(
    containers: Any, state_dir: Path
) -> None:
    project = f"part{os.getpid()}"
    labels = lambda service: ("--label", f"com.docker.compose.project={project}",  # noqa: E731
                              "--label", f"com.docker.compose.service={service}")
    web_port, cache_port = free_port(), free_port()
    web = containers.web(web_port, options=labels("web"))
    cache = containers.web(cache_port, options=labels("cache"))
    engine = containers.engine
    cache_ip = engine.inspect(cache, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
    assert reaches(engine, web, cache_ip)
    before = netns_state(engine, web)
    proc = subprocess.Popen(chaos_cmd("run", "-q", str(_peer_experiment(state_dir, project))),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        assert wait_until(lambda: not reaches(engine, web, cache_ip), 30) is not None
        assert http_ok(web_port) and http_ok(cache_port), "the host still reaches both"
    finally:
        code, out = finish(proc)
    assert code == 0, out
    assert reaches(engine, web, cache_ip)
    assert netns_state(engine, web) == before


def _peer_experiment(state_dir: Path, project: str) -> Path:
    path = state_dir.parent / "peer.yaml"
    path.write_text(f"""title: web cannot reach cache
faults:
  - type: network.partition
    target: {{container: {{compose: {{project: {project}, service: web}},
              peer: {{compose: {{project: {project}, service: cache}}}}}}}}
    duration: 3s
""")
    return path


def test_the_container_chaos_runs_in_is_refused(containers: Any, state_dir: Path) -> None:
    """The runner is placed in the container's cgroups before it starts (as a runner started
    inside the container would be): pausing that container would freeze chaos itself."""
    from chaos.adapters.local.resource import cgroup_procs_files

    name = containers.run("sleep", "100000", options=("--init",))
    engine = containers.engine
    files = cgroup_procs_files(int(engine.inspect(name, "{{.State.Pid}}")))

    def join() -> None:
        for path in files:
            with open(path, "w") as file:
                file.write(str(os.getpid()))

    proc = subprocess.Popen(chaos_cmd("inject", "container.pause", "--container", name,
                                      "--for", "2s"), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=join)  # noqa: PLW1509
    try:
        code, out = finish(proc, timeout=60)
    except subprocess.TimeoutExpired:  # it froze itself: thaw it, or it never dies
        engine.docker("unpause", name, check=False)
        proc.kill()
        code, out = finish(proc)
        pytest.fail("chaos paused the container it runs in, freezing itself: " + out)
    assert code == 2, out
    assert f"refusing to target container {name}: chaos itself runs in it" in out
    assert engine.inspect(name, "{{.State.Paused}}") == "false"


def test_network_faults_refuse_when_chaos_cannot_see_the_containers_processes(
    containers: Any, state_dir: Path
) -> None:
    """chaos in a PID namespace of its own (as in a container without `--pid host`)."""
    name = containers.run("sleep", "100000", options=("--init",))
    result = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc",
                             *chaos_cmd("inject", "network.bandwidth", "--container", name,
                                        "--rate", "1MiB", "--for", "2s")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is not visible to chaos" in result.stdout and "--pid host" in result.stdout
