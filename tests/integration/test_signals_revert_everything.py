"""SIGINT and SIGTERM revert everything at once, whatever the runner is waiting for, and the
verdict's exit code says what happened: 130/143 interrupted, 3 steady state not met, 4 aborted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, chaos_cmd, free_port, open_injections, process_state
from tests.conftest import wait_until as wait_for
from tests.support.experiment_files import freeze


def start(path: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(path.with_suffix(".log"), "wb") as log:
        return subprocess.Popen(chaos_cmd("run", *args, str(path)), cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)


def output(path: Path) -> str:
    return path.with_suffix(".log").read_text()


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def name_of(process: psutil.Process) -> str:
    """A short-lived probe (`/bin/true` every 100 ms) may be reaped between listing and naming."""
    try:
        return process.name()
    except psutil.NoSuchProcess:
        return ""


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_a_long_fault_reverts_at_once(
    tmp_path: Path, state_dir: Path, sleeper: psutil.Process, signum: int, code: int
) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(f"""title: a long freeze
{freeze(sleeper.pid, "10m")}""")
    runner = start(path)
    try:
        assert wait_for(lambda: process_state(sleeper.pid) == "T", 15) is not None
        sent = time.monotonic()
        runner.send_signal(signum)
        resumed = wait_for(lambda: process_state(sleeper.pid) != "T", 2, 0.001)
        assert resumed is not None, "target still frozen 2 s after the signal"
        assert runner.wait(10) == code, output(path)
        assert time.monotonic() - sent < 5
        assert open_injections() == []
        assert "INTERRUPTED" in output(path)
    finally:
        runner.kill()
        runner.wait(10)  # an unwaited Popen warns in a later test


def test_signal_during_a_long_probe_does_not_wait_for_it(
    tmp_path: Path, state_dir: Path, sleeper: psutil.Process
) -> None:
    """An exec probe that takes 20 s is running when SIGTERM arrives: the revert does not wait
    for it, and the probe's child process does not outlive the run."""
    marker = tmp_path / "probe-started"
    path = tmp_path / "slow-probe.yaml"
    path.write_text(f"""title: a slow probe while frozen
hypothesis:
  probes:
    - name: fast
      exec: {{run: [/bin/true]}}
    - name: slow
      exec: {{run: [/bin/sh, -c, "touch {marker}; exec sleep 20"], timeout: 30s}}
  checks: [fast >= 50%]
  before: {{window: 300ms, every: 100ms}}
  during: {{every: 100ms}}
{freeze(sleeper.pid, "10m")}""")
    runner = start(path)
    try:
        assert wait_for(lambda: process_state(sleeper.pid) == "T", 20) is not None, output(path)
        assert marker.exists()
        sleeps = [p for p in descendants(runner.pid) if "sleep" in name_of(p)]
        assert sleeps, "the slow probe should be running"
        runner.send_signal(signal.SIGTERM)
        assert wait_for(lambda: process_state(sleeper.pid) != "T", 2, 0.001) is not None
        assert runner.wait(10) == 143, output(path)
        assert wait_for(lambda: not any(p.is_running() and p.status() != "zombie"
                                        for p in sleeps), 5) is not None
    finally:
        runner.kill()
        runner.wait(10)  # an unwaited Popen warns in a later test


def test_second_ctrl_c_does_not_skip_reverts(
    tmp_path: Path, state_dir: Path, sleeper: psutil.Process
) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(f"""title: impatient user
{freeze(sleeper.pid, "5m")}""")
    runner = start(path)
    try:
        assert wait_for(lambda: process_state(sleeper.pid) == "T", 15) is not None
        runner.send_signal(signal.SIGINT)
        runner.send_signal(signal.SIGINT)
        runner.send_signal(signal.SIGINT)
        assert runner.wait(10) == 130, output(path)
        assert process_state(sleeper.pid) != "T"
        assert open_injections() == []
    finally:
        runner.kill()
        runner.wait(10)  # an unwaited Popen warns in a later test


def test_signal_before_injection_exits_without_injecting(
    tmp_path: Path, state_dir: Path, sleeper: psutil.Process, demo_service: int
) -> None:
    path = tmp_path / "early.yaml"
    path.write_text(f"""title: interrupted while measuring the steady state
hypothesis:
  probes: [{{name: home, http: "http://127.0.0.1:{demo_service}/"}}]
  before: {{window: 30s, every: 100ms}}
{freeze(sleeper.pid, "5s")}""")
    runner = start(path)
    try:
        time.sleep(1.5)
        runner.send_signal(signal.SIGINT)
        assert runner.wait(10) == 130, output(path)
        assert process_state(sleeper.pid) != "T"
        ledger = list((state_dir / "ledger").glob("*.jsonl"))
        records = [json.loads(line) for f in ledger for line in f.read_text().splitlines()]
        assert not [r for r in records if r["event"] == "intent"]
    finally:
        runner.kill()
        runner.wait(10)  # an unwaited Popen warns in a later test


def test_steady_state_not_met_is_exit_3_and_injects_nothing(
    tmp_path: Path, state_dir: Path, sleeper: psutil.Process
) -> None:
    closed = free_port()
    path = tmp_path / "broken.yaml"
    path.write_text(f"""title: the service is already down
hypothesis:
  probes: [{{name: home, http: "http://127.0.0.1:{closed}/"}}]
  before: {{window: 500ms, every: 100ms}}
{freeze(sleeper.pid, "5s")}""")
    result = subprocess.run(chaos_cmd("run", str(path)), cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "STEADY STATE NOT MET" in result.stdout
    assert "home >= 100%" in result.stdout and "Connection" in result.stdout
    records = [json.loads(line) for f in (state_dir / "ledger").glob("*.jsonl")
               for line in f.read_text().splitlines()]
    assert [r["event"] for r in records] == ["run", "watchdog", "finished"]
    assert process_state(sleeper.pid) != "T"


def test_guardrail_breach_reverts_within_milliseconds(
    tmp_path: Path, state_dir: Path, demo_service: int
) -> None:
    """Freezing the service makes every probe fail; `abort` must revert before the fault ends
    (it is held for 5 minutes) and exit 4."""
    service = next(p for p in psutil.process_iter(["cmdline"])
                   if str(demo_service) in (p.info["cmdline"] or []))
    path = tmp_path / "guarded.yaml"
    path.write_text(f"""title: guardrail stops a harmful fault
hypothesis:
  probes: [{{name: home, http: {{url: "http://127.0.0.1:{demo_service}/", timeout: 200ms}}}}]
  before: {{window: 500ms, every: 100ms}}
  during: {{every: 100ms, window: 1s, abort: [home < 50%]}}
{freeze(service.pid, "5m")}""")
    started = time.monotonic()
    result = subprocess.run(chaos_cmd("run", str(path)), cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 4, result.stdout + result.stderr
    assert time.monotonic() - started < 20
    assert "GUARDRAIL BREACHED" in result.stderr
    assert process_state(service.pid) != "T"
    assert open_injections() == []
    journal = json.loads(next((tmp_path / "runs").glob("*/journal.json")).read_text())
    assert journal["verdict"] == "aborted"
    assert [e["event"] for e in journal["events"]].count("guardrail.breached") == 1
    assert os.path.exists(journal["experiment"]["source"])
