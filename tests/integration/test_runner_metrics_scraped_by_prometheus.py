"""The runner's own metrics, scraped by Debian's real Prometheus: `chaos run --metrics` shows
the active fault while it is held, then the injection, its revert and the checks' verdicts;
`chaos exporter` raises chaos_faults_left_open for an injection whose runner died, and lowers
it once the ledger records the revert."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from chaos.safety.ledger import Ledger
from tests.conftest import chaos_cmd, free_port, release
from tests.support.alerting import instant, start_prometheus

pytestmark = pytest.mark.needs("prometheus")


def poll(what: str, found: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not seen within {timeout}s")


def test_a_run_serves_its_faults_and_verdicts_to_prometheus(tmp_path: Path,
                                                             state_dir: Path) -> None:
    port = free_port()
    prometheus, prom = start_prometheus(tmp_path, {"chaos": f"127.0.0.1:{port}"})
    sleeper = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)"])
    path = tmp_path / "metrics.yaml"
    path.write_text(f"""title: the runner shows up in Prometheus
hypothesis:
  probes: [{{name: prometheus, http: {{url: "{prometheus}/-/healthy"}}}}]
  before: {{window: 1s, every: 100ms}}
  after: {{settle: 0s, window: 3s, every: 100ms}}
faults:
  - type: process.suspend
    target: {{process: {{pid: {sleeper.pid}}}}}
    duration: 5s
""")
    run = subprocess.Popen(chaos_cmd("run", "--metrics", f"127.0.0.1:{port}", str(path)),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        poll("chaos_active_faults == 1", lambda: any(
            v == 1 for _, v in instant(prometheus, 'chaos_active_faults{type="process.suspend"}')))
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, out + err

        def last(query: str) -> list[tuple[dict[str, str], float]]:
            return instant(prometheus, f"last_over_time({query}[5m])")

        assert [v for _, v in last('chaos_injections_total{outcome="injected"}')] == [1]
        assert [v for _, v in last('chaos_reverts_total{outcome="reverted",by="runner"}')] == [1]
        assert [v for _, v in last('chaos_active_faults{type="process.suspend"}')] == [0]
        statuses = {m["phase"]: v for m, v in last("chaos_check_status")}
        assert statuses == {"before": 1, "after": 1}
        assert [v for _, v in last('chaos_faults_left_open')] == [0]
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
        release(sleeper)
        prom.terminate()
        prom.wait(10)


def test_the_exporter_raises_faults_left_open_for_a_dead_runner(tmp_path: Path,
                                                                state_dir: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(dead.pid).create_time()
    dead.wait()
    ledger = Ledger(state_dir)
    ledger.start_run("crashed", pid=dead.pid, pid_create_time=created, title="crashed")
    ledger.intent("crashed", "crashed.0.0", fault="network.latency", target="lo",
                  revert={"adapter": "local.process", "action": "resume", "processes": []},
                  deadline=time.time() + 3600)
    ledger.applied("crashed", "crashed.0.0")
    port = free_port()
    log = (tmp_path / "exporter.log").open("w")
    exporter = subprocess.Popen(chaos_cmd("exporter", "--listen", f"127.0.0.1:{port}"),
                                stdout=log, stderr=log)
    prometheus, prom = start_prometheus(tmp_path, {"ledger": f"127.0.0.1:{port}"})
    try:
        poll("chaos_faults_left_open == 1", lambda: instant(
            prometheus, 'chaos_faults_left_open{type="network.latency"}') == [
            ({"__name__": "chaos_faults_left_open", "instance": f"127.0.0.1:{port}",
              "job": "ledger", "type": "network.latency"}, 1.0)])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        assert "# TYPE chaos_faults_left_open gauge" in text
        ledger.reverted("crashed", "crashed.0.0", by="recover")
        poll("chaos_faults_left_open back to 0", lambda: not instant(
            prometheus, 'chaos_faults_left_open{type="network.latency"}') and any(
            v == 0 for _, v in instant(prometheus, "chaos_faults_left_open")))
    finally:
        exporter.terminate()
        code = exporter.wait(10)
        log.close()
        assert code == 0, (tmp_path / "exporter.log").read_text()  # a clean stop on SIGTERM
        prom.terminate()
        prom.wait(10)


def test_chaos_inject_serves_the_held_fault(tmp_path: Path, state_dir: Path) -> None:
    victim = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)"])
    port = free_port()
    inject = subprocess.Popen(chaos_cmd("inject", "process.suspend", "--pid", str(victim.pid),
                                        "--for", "4s", "--metrics", f"127.0.0.1:{port}"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: list[str] = []

    def active() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return False
        seen[:] = [line for line in text.splitlines()
                   if line.startswith("chaos_active_faults{")]
        return any(line.endswith(" 1.0") for line in seen)

    try:
        poll("the held fault on /metrics", active)
        assert 'type="process.suspend"' in seen[0] and str(victim.pid) in seen[0]
        poll("chaos inject ending", lambda: active() and False or inject.poll() is not None)
        assert inject.returncode == 0
        assert seen and all(line.endswith(" 0.0") for line in seen)  # reverted, then scraped
    finally:
        if inject.poll() is None:
            inject.kill()
            inject.wait()
        release(victim)
