"""A real alerting pipeline for detection tests: an exporter (tests.integration.metrics_http_server)
scraped every second by Debian's Prometheus, which evaluates alert rules every second and sends
them to Debian's Alertmanager. Suspending the exporter (SIGSTOP, what `process.suspend` does)
makes its scrapes time out, so `up == 0` fires TargetDown; resuming it resolves the alert.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, free_port

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

SCRAPE = 1.0  # scrape interval, seconds
SCRAPE_TIMEOUT = 0.5
EVALUATION = 1.0

RULES = """groups:
  - name: detection-tests
    interval: 1s
    rules:
      - alert: TargetDown
        expr: up{job="target"} == 0
        labels: {severity: page, service: target}
      - alert: TargetDownForAMinute
        expr: up{job="target"} == 0
        for: 1m
        labels: {severity: ticket, service: target}
      - alert: AlwaysFiring
        expr: vector(1)
        labels: {severity: info}
      - alert: NeverFires
        expr: vector(0) > 1
        labels: {severity: page}
"""


@dataclass
class AlertingStack:
    prometheus: str  # base URLs
    alertmanager: str
    exporter_pid: int
    processes: list[subprocess.Popen[Any]]

    def get(self, url: str) -> Any:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return json.load(answer)

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        return list(self.get(f"{self.alertmanager}/api/v2/alerts"))

    def wait_until_quiet(self, alertname: str = "TargetDown", timeout: float = 60) -> None:
        """Until neither Prometheus nor Alertmanager shows the alert (a run's fault resolved)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            prom = self.get(f"{self.prometheus}/api/v1/alerts")["data"]["alerts"]
            names = {a["labels"]["alertname"] for a in prom} | {
                a["labels"]["alertname"] for a in self.alertmanager_alerts()}
            if alertname not in names:
                return
            time.sleep(0.2)
        raise AssertionError(f"{alertname} still active after {timeout}s")

    def firing_samples(self, alertname: str, start: float, end: float) -> list[float]:
        """Epochs of Prometheus' own ALERTS{alertstate="firing"} samples: the truth of when the
        rule fired, as its evaluations recorded it."""
        query = urllib.parse.urlencode({
            "query": f'ALERTS{{alertname="{alertname}", alertstate="firing"}}',
            "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "0.1"})
        result = self.get(f"{self.prometheus}/api/v1/query_range?{query}")["data"]["result"]
        return sorted(float(t) for series in result for t, _ in series["values"])

    def close(self) -> None:
        for proc in reversed(self.processes):
            if proc.stdout is not None:
                proc.stdout.close()
            try:
                proc.send_signal(18)  # SIGCONT: a test may have left one stopped
                proc.terminate()
                proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                proc.kill()


def _wait(what: str, check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} not ready within {timeout}s")


def start_stack(tmp: Path) -> AlertingStack:
    assert PROMETHEUS and ALERTMANAGER
    processes: list[subprocess.Popen[Any]] = []
    exporter = subprocess.Popen([sys.executable, "-m", "tests.integration.metrics_http_server"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
    processes.append(exporter)
    assert exporter.stdout is not None
    port = int(exporter.stdout.readline())
    am_port, prom_port = free_port(), free_port()
    (tmp / "alertmanager.yml").write_text(
        "route: {receiver: nobody, group_wait: 0s, group_interval: 1s}\n"
        "receivers: [{name: nobody}]\n")
    processes.append(subprocess.Popen(
        [ALERTMANAGER, f"--config.file={tmp}/alertmanager.yml", f"--storage.path={tmp}/am",
         f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    (tmp / "rules.yml").write_text(RULES)
    (tmp / "prometheus.yml").write_text(f"""global:
  scrape_interval: {SCRAPE:g}s
  scrape_timeout: {SCRAPE_TIMEOUT * 1000:g}ms
  evaluation_interval: {EVALUATION:g}s
rule_files: [{tmp}/rules.yml]
alerting:
  alertmanagers: [{{static_configs: [{{targets: ["127.0.0.1:{am_port}"]}}]}}]
scrape_configs:
  - job_name: target
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
""")
    processes.append(subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp}/prometheus.yml", f"--storage.tsdb.path={tmp}/data",
         f"--web.listen-address=127.0.0.1:{prom_port}",
         # resend every evaluation: the first notification may come before Alertmanager is
         # discovered, and the default waits a minute before sending again
         "--rules.alert.resend-delay=1s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    stack = AlertingStack(f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}",
                          exporter.pid, processes)
    try:
        # AlwaysFiring reached Alertmanager: scrapes, rules and notifications all work
        _wait("the alerting pipeline", lambda: any(
            a["labels"]["alertname"] == "AlwaysFiring" for a in stack.alertmanager_alerts()))
    except BaseException:
        stack.close()
        raise
    return stack


def start_alertmanager(tmp: Path, port: int) -> subprocess.Popen[Any]:
    """Debian's Alertmanager alone on 127.0.0.1:`port`, routing to nobody; returns at once
    (a test that starts it late wants it coming up while a run is watching)."""
    assert ALERTMANAGER
    (tmp / "alertmanager.yml").write_text("route: {receiver: nobody}\nreceivers: [{name: nobody}]\n")
    return subprocess.Popen(
        [ALERTMANAGER, f"--config.file={tmp}/alertmanager.yml", f"--storage.path={tmp}/am",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_prometheus(tmp: Path, targets: dict[str, str]) -> tuple[str, subprocess.Popen[Any]]:
    """Prometheus scraping each `job: host:port` every second; (base URL, process) once up."""
    assert PROMETHEUS
    port = free_port()
    jobs = "".join(f"""  - job_name: {job}
    static_configs: [{{targets: ["{target}"]}}]
""" for job, target in targets.items())
    (tmp / "prometheus.yml").write_text(f"""global:
  scrape_interval: {SCRAPE:g}s
  scrape_timeout: {SCRAPE_TIMEOUT * 1000:g}ms
  evaluation_interval: {EVALUATION:g}s
scrape_configs:
{jobs}""")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp}/prometheus.yml", f"--storage.tsdb.path={tmp}/data",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait("Prometheus", lambda: urllib.request.urlopen(f"{url}/-/ready", timeout=1).status
              == 200)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return url, proc


def instant(url: str, query: str) -> list[tuple[dict[str, str], float]]:
    """An instant query's vector as (labels, value) pairs."""
    encoded = urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(f"{url}/api/v1/query?{encoded}", timeout=2) as answer:
        result = json.load(answer)["data"]["result"]
    return [(r["metric"], float(r["value"][1])) for r in result]


def watch_process_state(pid: int, on_change: Callable[[str], bool],
                        timeout: float = 60) -> threading.Thread:
    """A started thread that reads the process's state letter from /proc every 20 ms (T:
    stopped, as process.suspend leaves it) and calls `on_change(state)` at each change, the
    first reading included, until it returns True or `timeout` passes: a fault seen from
    outside the runner, while a run goes on."""
    def watch() -> None:
        deadline, last = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != last and on_change(state):
                return
            last = state
            time.sleep(0.02)

    thread = threading.Thread(target=watch)
    thread.start()
    return thread
