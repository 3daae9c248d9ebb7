"""Detection against Debian's real Alertmanager that is not there when the run starts: started
by the experiment as a declared service, the polls before it answers are waiting for it and a
forbidden alert is judged (PASS, exit 0); started only after the fault began, detection could
not see alerts when it began (ERROR, exit 2) - either way the fault is reverted on schedule."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, run_chaos
from tests.support.alerting import start_alertmanager, watch_process_state

pytestmark = pytest.mark.needs("prometheus-alertmanager")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(["sleep", "120"], text=True)
    yield proc
    proc.kill()
    proc.wait(10)


def experiment(tmp_path: Path, pid: int, port: int, services: str = "") -> Path:
    path = tmp_path / "late-monitoring.yaml"
    path.write_text(f"""title: monitoring that starts with the run
{services}faults:
  - name: freeze
    type: process.suspend
    target: {{process: {{pid: {pid}}}}}
    duration: 2s
detection:
  alertmanager: {{url: "http://127.0.0.1:{port}", timeout: 500ms}}
  every: 250ms
  forbid:
    - alert: {{severity: critical}}
""")
    return path


def journal(tmp_path: Path) -> dict[str, Any]:
    (found,) = (tmp_path / "runs").glob("*/journal.json")
    return dict(json.loads(found.read_text()))


def test_alertmanager_declared_as_a_service_is_waited_for_and_a_forbid_is_judged(
        tmp_path: Path, state_dir: Path, sleeper: subprocess.Popen[str]) -> None:
    port = free_port()
    path = experiment(tmp_path, sleeper.pid, port, services=f"""services:
  - name: alertmanager
    run: ["{sys.executable}", -m, chaos.demo.monitoring, alertmanager, --port, "{port}"]
    ready: {{http: "http://127.0.0.1:{port}/-/ready", timeout: 30s}}
""")
    result = run_chaos("run", str(path), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    doc = journal(tmp_path)
    (forbidden,) = doc["detection"]["alerts"]
    assert forbidden["status"] == "PASS", forbidden
    assert forbidden["source_answered"] > 0 and forbidden["gaps"] == []
    (failed,) = [e for e in doc["events"] if e["event"] == "alert.poll_failed"]
    assert failed["waiting"] is True and failed["t"] < forbidden["source_answered"]
    assert [i["outcome"] for i in doc["injections"]] == ["reverted"]


def test_alertmanager_started_after_the_fault_began_is_an_error_and_reverts_on_time(
        tmp_path: Path, state_dir: Path, sleeper: subprocess.Popen[str]) -> None:
    port = free_port()
    path = experiment(tmp_path, sleeper.pid, port)
    started: list[subprocess.Popen[Any]] = []

    def seen(state: str) -> bool:  # from outside: /proc says the fault is in
        if state == "T":
            started.append(start_alertmanager(tmp_path, port))
        return bool(started)

    starter = watch_process_state(sleeper.pid, seen)
    try:
        result = run_chaos("run", str(path), timeout=120)
    finally:
        starter.join()
        for proc in started:
            proc.terminate()
            proc.wait(10)
    assert started, "the fault was never seen in /proc"
    assert result.returncode == 2, result.stdout + result.stderr
    doc = journal(tmp_path)
    (forbidden,) = doc["detection"]["alerts"]
    assert forbidden["status"] == "ERROR", forbidden
    (check,) = doc["phases"]["detection"]["checks"]
    assert "could have fired unseen" in check["reason"], check
    (injection,) = doc["injections"]
    # waiting for the source until the fault began; from then on, not seeing is a gap
    waiting = [e["waiting"] for e in doc["events"] if e["event"] == "alert.poll_failed"]
    assert waiting[0] is True and not any(waiting[1:]), waiting
    assert forbidden["source_answered"] > injection["injected_at"]
    assert forbidden["gaps"] == [[0.0, pytest.approx(forbidden["source_answered"], abs=0.01)]]
    assert injection["outcome"] == "reverted"
    assert injection["reverted_at"] - injection["injected_at"] == pytest.approx(2.0, abs=0.5)
