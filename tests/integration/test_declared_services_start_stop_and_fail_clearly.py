"""Services declared by an experiment: started and awaited before it, stopped after it, their
output kept next to the journal, and clear errors (exit 2) when one cannot start.

The service is a small script written by the test; whether anything of it is left running is
checked with psutil, by a marker on its command line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import (
    accepts_connections,
    free_port,
    journals,
    processes_matching,
    run_chaos,
    unique_marker,
    wait_until,
)

SERVICE = """\
import signal, socket, subprocess, sys, time
port, marker, modes = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
print(f"service {marker} starting on port {port}", flush=True)
print("a warning on stderr", file=sys.stderr, flush=True)
if "ignore-term" in modes:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if "child" in modes:
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker + "-child"])
if "crash" in modes:
    print("fatal: no configuration file", flush=True)
    sys.exit(7)
if "exit-soon" in modes:
    server = socket.create_server(("127.0.0.1", port))
    server.settimeout(1)
    try:
        server.accept()[0].close()
    except TimeoutError:
        pass
    sys.exit(3)
if "never-ready" in modes:
    print("warming up the caches, this takes a while", flush=True)
    time.sleep(60)
server = socket.create_server(("127.0.0.1", port))
while True:
    server.accept()[0].close()
"""


def experiment(tmp_path: Path, run: list[str], port: int, *, stop: str = "",
               ready_within: str = "10s") -> Path:
    """The service, awaited on its port, and a short hypothesis that it keeps listening."""
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    lines = [f"title: a declared service ({tmp_path.name})", "services:", "  - name: backend",
             f"    run: {json.dumps(run)}",
             f'    ready: {{tcp: "127.0.0.1:{port}", timeout: {ready_within}}}']
    if stop:
        lines.append(f"    stop: {stop}")
    lines += ["hypothesis:", f'  probes: [{{name: up, tcp: {{address: "127.0.0.1:{port}"}}}}]',
              "  before: {window: 500ms, every: 100ms}"]
    path = tmp_path / "service.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def script_argv(tmp_path: Path, port: int, marker: str, *modes: str) -> list[str]:
    return ["${python}", str(tmp_path / "service.py"), str(port), marker, *modes]


def test_service_output_is_captured_next_to_the_journal(tmp_path: Path, state_dir: Path) -> None:
    port, marker = free_port(), unique_marker()
    path = experiment(tmp_path, script_argv(tmp_path, port, marker), port)
    result = run_chaos("run", str(path), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    (journal,) = journals(tmp_path / "runs")
    log = tmp_path / "runs" / journal["run"] / "service-backend.log"
    text = log.read_text()
    assert f"service {marker} starting on port {port}" in text
    assert "a warning on stderr" in text  # stderr goes to the same log
    started = [e for e in journal["events"] if e["event"] == "service.started"]
    assert started and started[0]["log"] == str(log)
    assert processes_matching(marker) == []


def test_readiness_timeout_is_a_clear_error_with_the_output_tail(tmp_path: Path,
                                                                 state_dir: Path) -> None:
    port, marker = free_port(), unique_marker()
    path = experiment(tmp_path, script_argv(tmp_path, port, marker, "never-ready"), port,
                      ready_within="1s")
    started = time.monotonic()
    result = run_chaos("run", str(path), timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert time.monotonic() - started < 20
    assert "service backend was not ready within 1s" in output
    assert "ConnectionRefusedError" in output  # the last answer of the readiness check
    assert "warming up the caches" in output  # the tail of the service's own output
    assert "service-backend.log" in output
    assert "Traceback" not in output
    assert processes_matching(marker) == [], "the service that never got ready was left running"


def test_a_service_that_exits_before_it_is_ready_shows_its_exit_code_and_output(
    tmp_path: Path, state_dir: Path
) -> None:
    port, marker = free_port(), unique_marker()
    path = experiment(tmp_path, script_argv(tmp_path, port, marker, "crash"), port)
    result = run_chaos("run", str(path), timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    (journal,) = journals(tmp_path / "runs")
    log = tmp_path / "runs" / journal["run"] / "service-backend.log"
    assert f"service backend exited (code 7) before it was ready: see {log}" in output
    assert "fatal: no configuration file" in output
    assert "target selector" not in output
    (exited,) = [e for e in journal["events"] if e["event"] == "service.exited"]
    assert (exited["returncode"], exited["ready"], exited["log"]) == (7, False, str(log))


def test_an_address_that_answers_before_the_service_starts_is_refused(
    tmp_path: Path, state_dir: Path
) -> None:
    """Another process on the service's port would pass its readiness check and be measured."""
    port, marker = free_port(), unique_marker()
    path = experiment(tmp_path, script_argv(tmp_path, port, marker), port)
    foreign = subprocess.Popen([sys.executable, str(tmp_path / "service.py"), str(port),
                                "foreign"], stdout=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: accepts_connections(port), 10) is not None
        result = run_chaos("run", str(path), timeout=60)
    finally:
        foreign.kill()
        foreign.wait()
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"127.0.0.1:{port} already accepts connections" in output
    assert "(held by python" in output and f", pid {foreign.pid})" in output
    assert "--var port=" in output
    assert processes_matching(marker) == []
    (journal,) = journals(tmp_path / "runs")
    assert not [e for e in journal["events"] if e["event"] == "service.started"]


def test_a_service_that_exits_while_the_run_holds_it_is_named_not_the_selector(
    tmp_path: Path, state_dir: Path
) -> None:
    port, marker = free_port(), unique_marker()
    path = experiment(tmp_path, script_argv(tmp_path, port, marker, "exit-soon"), port)
    text = path.read_text().replace("  before: {window: 500ms, every: 100ms}\n", "")
    path.write_text(text + "faults:\n  - type: process.suspend\n    target: {service: backend}\n"
                    "    start: 2s\n    duration: 1s\n")
    result = run_chaos("run", str(path), timeout=60)
    output = result.stdout + result.stderr
    (journal,) = journals(tmp_path / "runs")
    log = tmp_path / "runs" / journal["run"] / "service-backend.log"
    assert f"service backend exited (code 3) while the run held it: see {log}" in output
    assert "target selector" not in output
    (exited,) = [e for e in journal["events"] if e["event"] == "service.exited"]
    assert (exited["returncode"], exited["ready"]) == (3, True)


def test_a_service_whose_command_does_not_exist_is_a_clear_error(tmp_path: Path,
                                                                  state_dir: Path) -> None:
    path = experiment(tmp_path, ["/nonexistent/chaos-it-backend", "--serve"], free_port())
    result = run_chaos("run", str(path), timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "service backend: cannot run '/nonexistent/chaos-it-backend'" in output
    assert "No such file or directory" in output
    assert "Traceback" not in output
    (journal,) = journals(tmp_path / "runs")
    assert journal["exit_code"] == 2 and "cannot run" in journal["reason"]


def test_the_processes_a_service_started_stop_with_it(tmp_path: Path, state_dir: Path) -> None:
    port, marker = free_port(), unique_marker()
    path = experiment(tmp_path, script_argv(tmp_path, port, marker, "child"), port)
    result = run_chaos("run", str(path), timeout=60)
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert processes_matching(f"{marker}-child") == [], "the service's child outlived it"
    finally:
        for proc in processes_matching(marker):
            proc.kill()


def test_a_service_that_ignores_sigterm_is_killed_after_its_stop_timeout(
    tmp_path: Path, state_dir: Path
) -> None:
    port, marker = free_port(), unique_marker()
    path = experiment(tmp_path, script_argv(tmp_path, port, marker, "ignore-term"),
                      port, stop="{timeout: 1s}")
    started = time.monotonic()
    result = run_chaos("run", str(path), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 20
    assert processes_matching(marker) == []
    (journal,) = journals(tmp_path / "runs")
    (stopped,) = [e for e in journal["events"] if e["event"] == "service.stopped"]
    assert stopped["returncode"] == -9  # SIGKILL, after SIGTERM was ignored for 1 s
