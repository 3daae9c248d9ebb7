"""`service.restart` of a declared service: a new process replaces the old one and answers.

The run goes on (the after phase) while the test watches from outside: psutil finds the demo
service by its port on the command line, and a plain urllib client asks it who it is (the demo
answers with its pid).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import psutil

from tests.conftest import (
    ROOT,
    chaos_cmd,
    free_port,
    journals,
    processes_matching,
    wait_until,
)


def restart_experiment(tmp_path: Path, port: int, signal: str = "") -> Path:
    path = tmp_path / "restart.yaml"
    with_signal = f"\n    with: {{signal: {signal}}}" if signal else ""
    path.write_text(f"""title: the demo answers again after a restart
services:
  - name: demo
    run: ["${{python}}", -m, chaos.demo.service, --port, "{port}"]
    ready: {{http: "http://127.0.0.1:{port}/health", timeout: 15s}}
hypothesis:
  probes: [{{name: home, http: "http://127.0.0.1:{port}/"}}]
  before: {{window: 1s, every: 100ms}}
  after: {{settle: 500ms, window: 3s, every: 100ms, recover_within: 5s}}
faults:
  - name: bounce
    type: service.restart
    target: {{service: demo}}{with_signal}
    start: 200ms
""")
    return path


def demo_pids(port: int) -> list[int]:
    return [p.pid for p in processes_matching(f"chaos.demo.service --port {port}")]


def who_answers(port: int) -> int | None:
    """The pid the demo reports in a 200 answer, or None if it does not answer (yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return int(json.loads(response.read())["pid"]) if response.status == 200 else None
    except OSError:
        return None


def test_restart_replaces_the_process_and_it_answers_again(tmp_path: Path,
                                                           state_dir: Path) -> None:
    port = free_port()
    path = restart_experiment(tmp_path, port)
    with open(tmp_path / "run.log", "wb") as log:
        runner = subprocess.Popen(chaos_cmd("run", str(path)), cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: len(demo_pids(port)) == 1, 15) is not None
        (first,) = demo_pids(port)
        assert wait_until(lambda: who_answers(port) == first, 15) is not None

        assert wait_until(lambda: demo_pids(port) not in ([], [first]), 15) is not None, \
            (tmp_path / "run.log").read_text()
        (second,) = demo_pids(port)
        assert second != first
        assert not psutil.pid_exists(first) or psutil.Process(first).status() == "zombie"
        assert wait_until(lambda: who_answers(port) == second, 10) is not None

        assert runner.wait(60) == 0, (tmp_path / "run.log").read_text()
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(10)
    assert demo_pids(port) == []

    (journal,) = journals(tmp_path / "runs")
    (injection,) = journal["injections"]
    assert injection["type"] == "service.restart"
    assert injection["identity"]["pid"] == first
    assert injection["outcome"] in ("nothing", "reverted")
    started = [e["pid"] for e in journal["events"] if e["event"] == "service.started"]
    assert started == [first, second]
    assert {c["status"] for c in journal["phases"]["after"]["checks"]} == {"PASS"}


def test_restart_with_a_signal_uses_it_to_stop_the_old_process(tmp_path: Path,
                                                               state_dir: Path) -> None:
    port = free_port()
    path = restart_experiment(tmp_path, port, signal="KILL")
    result = subprocess.run(chaos_cmd("run", "-q", str(path)), cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (journal,) = journals(tmp_path / "runs")
    stopped = [e["returncode"] for e in journal["events"] if e["event"] == "service.stopped"]
    assert stopped[0] == -9  # the restart's stop: SIGKILL, as asked
    assert demo_pids(port) == []
