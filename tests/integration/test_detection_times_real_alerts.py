"""Detection expectations judged against Debian's real Prometheus and Alertmanager: a fault
(process.suspend of the scraped exporter) fires TargetDown; the run measures when, and the
measurement is checked against Prometheus' own record of its rule evaluations (the ALERTS
series). Missed, forbidden and pre-existing alerts, and an Alertmanager that stops answering
mid-run, each give their verdict and exit code; the fault is reverted on schedule regardless,
as seen from /proc."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_chaos
from tests.support.alerting import (
    EVALUATION,
    SCRAPE,
    SCRAPE_TIMEOUT,
    AlertingStack,
    start_stack,
    watch_process_state,
)

pytestmark = pytest.mark.needs("prometheus", "prometheus-alertmanager")

FAULT_FOR = 4.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertingStack]:
    stack = start_stack(tmp_path_factory.mktemp("alerting"))
    yield stack
    stack.close()


def experiment(tmp_path: Path, stack: AlertingStack, detection: str,
               source: str = "alertmanager", hypothesis: str = "") -> Path:
    url = stack.alertmanager if source == "alertmanager" else stack.prometheus
    path = tmp_path / "detect.yaml"
    path.write_text(f"""title: monitoring notices a frozen exporter
faults:
  - name: freeze
    type: process.suspend
    target: {{process: {{pid: {stack.exporter_pid}}}}}
    duration: {FAULT_FOR:g}s
{hypothesis}detection:
  {source}: {{url: "{url}", timeout: 1s}}
  every: 250ms
{detection}""")
    return path


def journal(tmp_path: Path) -> dict[str, Any]:
    (found,) = (tmp_path / "runs").glob("*/journal.json")
    return dict(json.loads(found.read_text()))


def alerts(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["alert"]: a for a in doc["detection"]["alerts"]}


def epoch_of(doc: dict[str, Any], t: float) -> float:
    """A run-relative time as an epoch, through an event's own (t, ts) pair."""
    event = next(e for e in doc["events"] if e["event"] == "run.finished")
    return float(event["ts"]) - (float(event["t"]) - t)


def test_an_expected_alert_fires_and_resolves_measured_against_prometheus_own_record(
        tmp_path: Path, state_dir: Path, stack: AlertingStack) -> None:
    stack.wait_until_quiet()
    path = experiment(tmp_path, stack, """  expect:
    - alert: {alertname: TargetDown, service: "=~targ.*"}
      within: 20s
      resolves_within: 20s
  forbid:
    - alert: {severity: critical}
""", hypothesis=f"""hypothesis:  # Prometheus stays healthy: gives the report a chart to mark
  probes: [{{name: prometheus, http: {{url: "{stack.prometheus}/-/healthy"}}}}]
  before: {{window: 1s, every: 100ms}}
  after: {{settle: 0s, window: 1s, every: 100ms}}
""")
    result = run_chaos("run", str(path), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    doc = journal(tmp_path)
    seen = alerts(doc)["alert {alertname=TargetDown, service=~targ.*}"]
    assert seen["status"] == "PASS" and seen["labels"]["alertname"] == "TargetDown"
    (injection,) = doc["injections"]
    # the truth: the first evaluation at which Prometheus itself recorded the alert firing
    fired = epoch_of(doc, seen["first_firing"])
    truth = [t for t in stack.firing_samples("TargetDown", fired - 30, fired + 30)
             if t >= epoch_of(doc, injection["injected_at"]) - EVALUATION]
    assert truth, "Prometheus recorded no firing TargetDown"
    assert abs(fired - truth[0]) <= SCRAPE + EVALUATION
    # and from the injection: a failed scrape (interval + timeout) and an evaluation at most
    assert 0 <= seen["time_to_detect"] <= SCRAPE + SCRAPE_TIMEOUT + EVALUATION + 1.0
    assert seen["time_to_detect"] == pytest.approx(seen["first_firing"] - injection["injected_at"],
                                                   abs=0.01)
    assert seen["resolved"] is not None and 0 <= seen["time_to_resolve"] <= 20
    forbidden = alerts(doc)["alert {severity=critical}"]
    assert forbidden["status"] == "PASS" and forbidden["first_firing"] is None
    assert "TargetDown" in result.stdout and "detection:" in result.stdout
    # reports, rendered later from the journal: the time to detect per alert, MTTD, chart mark
    (found,) = (tmp_path / "runs").glob("*/journal.json")
    markdown = run_chaos("report", "--format", "markdown", str(found)).stdout
    assert "detected by TargetDown after" in markdown and "Mean time to detect" in markdown
    html = run_chaos("report", "--format", "html", str(found)).stdout
    assert '<g class="alert"' in html and 'id="mttd"' in html
    junit = run_chaos("report", "--format", "junit", str(found)).stdout
    assert "TargetDown" in junit


def test_a_missed_and_a_forbidden_alert_fail_the_run_pending_is_not_firing(
        tmp_path: Path, state_dir: Path, stack: AlertingStack) -> None:
    stack.wait_until_quiet()
    path = experiment(tmp_path, stack, """  expect:
    - alert: {alertname: NeverFires}
      within: 3s
    - alert: {alertname: TargetDownForAMinute}
      within: 3s
  forbid:
    - alert: {alertname: TargetDown}
""", source="prometheus")
    result = run_chaos("run", str(path), timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    doc = journal(tmp_path)
    assert doc["verdict"] == "deviated"
    seen = alerts(doc)
    never = seen["alert {alertname=NeverFires}"]
    assert never["status"] == "FAIL" and never["first_firing"] is None
    slow = seen["alert {alertname=TargetDownForAMinute}"]  # pending the whole time
    assert slow["status"] == "FAIL" and slow["first_firing"] is None
    assert slow["first_pending"] is not None
    forbidden = seen["alert {alertname=TargetDown}"]
    assert forbidden["status"] == "FAIL" and forbidden["first_firing"] is not None
    checks = doc["phases"]["detection"]["checks"]
    assert [c["status"] for c in checks] == ["FAIL", "FAIL", "FAIL"]
    (found,) = (tmp_path / "runs").glob("*/journal.json")
    draft = run_chaos("report", "--format", "postmortem", str(found)).stdout
    assert "alert {alertname=NeverFires} did not fire" in draft


def test_an_expected_alert_already_firing_before_injection_is_invalid(
        tmp_path: Path, state_dir: Path, stack: AlertingStack) -> None:
    path = experiment(tmp_path, stack, """  expect:
    - alert: {alertname: AlwaysFiring}
      within: 10s
""")
    result = run_chaos("run", str(path), timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    doc = journal(tmp_path)
    seen = alerts(doc)["alert {alertname=AlwaysFiring}"]
    assert seen["status"] == "INVALID"
    assert seen["firing_before_injection"]["alertname"] == "AlwaysFiring"
    assert "proves nothing" in result.stdout


def test_alertmanager_hanging_mid_run_is_an_error_for_detection_only_and_reverts_on_time(
        tmp_path: Path, state_dir: Path, stack: AlertingStack) -> None:
    stack.wait_until_quiet()
    path = experiment(tmp_path, stack, """  expect:
    - alert: {alertname: TargetDown}
      within: 20s
      resolves_within: 5s
  forbid:
    - alert: {severity: critical}
""")
    alertmanager = stack.processes[1]
    frozen: list[float] = []  # when the exporter was seen stopped, then running again

    def seen(state: str) -> bool:  # from outside: stop Alertmanager once the fault is in
        if state == "T" and not frozen:
            frozen.append(time.monotonic())
            os.kill(alertmanager.pid, signal.SIGSTOP)  # hangs: accepts, never answers
        elif state != "T" and frozen:
            frozen.append(time.monotonic())
        return len(frozen) == 2

    watcher = watch_process_state(stack.exporter_pid, seen)
    try:
        result = run_chaos("run", str(path), timeout=120)
    finally:
        watcher.join()
        os.kill(alertmanager.pid, signal.SIGCONT)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(frozen) == 2, "the exporter was not seen frozen and thawed"
    assert frozen[1] - frozen[0] == pytest.approx(FAULT_FOR, abs=1.0)  # reverted on schedule
    doc = journal(tmp_path)
    (injection,) = doc["injections"]
    assert injection["outcome"] == "reverted"
    assert injection["reverted_at"] - injection["injected_at"] == pytest.approx(FAULT_FOR,
                                                                                abs=0.5)
    statuses = {a["alert"]: a["status"] for a in doc["detection"]["alerts"]}
    assert statuses["alert {severity=critical}"] == "ERROR"
    assert statuses["alert {alertname=TargetDown}"] == "ERROR"
    assert any(e["event"] == "alert.poll_failed" for e in doc["events"])


def test_a_silenced_alert_counts_as_detected_and_is_reported_as_silenced(
        tmp_path: Path, state_dir: Path, stack: AlertingStack) -> None:
    import urllib.request

    stack.wait_until_quiet()
    now = time.time()
    silence = json.dumps({
        "matchers": [{"name": "alertname", "value": "TargetDown", "isRegex": False,
                      "isEqual": True}],
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)),
        "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 600)),
        "createdBy": "tests", "comment": "detection test"}).encode()
    request = urllib.request.Request(f"{stack.alertmanager}/api/v2/silences", data=silence,
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        silence_id = json.load(answer)["silenceID"]
    try:
        path = experiment(tmp_path, stack, """  expect:
    - alert: {alertname: TargetDown}
      within: 20s
""")
        result = run_chaos("run", str(path), timeout=120)
    finally:
        urllib.request.urlopen(urllib.request.Request(
            f"{stack.alertmanager}/api/v2/silence/{silence_id}", method="DELETE"), timeout=5)
    assert result.returncode == 0, result.stdout + result.stderr
    seen = alerts(journal(tmp_path))["alert {alertname=TargetDown}"]
    assert seen["status"] == "PASS" and seen["state"] == "silenced"
    checks = journal(tmp_path)["phases"]["detection"]["checks"]
    assert "nobody was notified" in checks[0]["reason"]
