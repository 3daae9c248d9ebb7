"""The incident-rehearsal scenarios (experiments/scenarios/) run end to end with real components
and give the verdict they claim; what they report is what the components themselves saw.

Each run is the real CLI with free ports passed by --var. Outside the runner: the service logs
the runner keeps (Sentinel's own `+switch-master`, the Redis client's `failover:` line) and the
recorded journal, never the runner's word alone.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, free_port, run_chaos
from tests.support.system_tools import require

SCENARIOS = ROOT / "experiments" / "scenarios"


def _vars(**values: str) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--var", f"{key}={value}")]


def _database_ports() -> dict[str, str]:
    return {key: str(free_port()) for key in ("primary_port", "replica_port", "sentinel_port",
                                               "kv_port", "db_prometheus_port")}


def test_database_primary_failure_fails_over_and_reports_the_time(tmp_path: Path,
                                                                   state_dir: Path) -> None:
    require("redis-server", "redis-sentinel", "prometheus")
    ports = _database_ports()
    result = run_chaos("run", "-q", str(SCENARIOS / "database-primary-failure.yaml"),
                       *_vars(**ports), timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    (run_dir,) = (tmp_path / "runs").iterdir()
    journal = json.loads((run_dir / "journal.json").read_text())
    # Sentinel itself promoted the replica: its log names the switch to the replica's port
    sentinel_log = (run_dir / "service-sentinel.log").read_text()
    assert re.search(rf"\+switch-master primary 127\.0\.0\.1 {ports['primary_port']} "
                     rf"127\.0\.0\.1 {ports['replica_port']}", sentinel_log), sentinel_log
    # the client's side of it: writes went to the new primary after failing for a while
    client_log = (run_dir / "service-kvstore.log").read_text()
    failover = re.search(rf"failover: primary 127\.0\.0\.1:{ports['primary_port']} -> "
                         rf"127\.0\.0\.1:{ports['replica_port']}, writes failed for "
                         r"([\d.]+)s", client_log)
    assert failover, client_log
    # the time to failover the run reports (kill -> every probe succeeds) covers the writes the
    # client saw fail, and is within the hypothesis
    recovery = journal["recovery"]["seconds"]
    assert recovery is not None and float(failover.group(1)) <= recovery + 0.5 <= 8.5, journal
    assert f"recovered {recovery:.1f}s after the last revert" in out, out
    # monitoring noticed, from the client's /metrics: writes failing, then the failover - after
    # the kill, and the failover no sooner than the client saw it (its first write on the replica)
    failing, failed_over = journal["detection"]["alerts"]
    assert failing["status"] == "PASS" and failing["labels"]["alertname"] == \
        "DatabaseWritesFailing", failing
    assert failed_over["status"] == "PASS", failed_over
    assert 0 < failing["time_to_detect"] < failed_over["time_to_detect"] <= 10, journal[
        "detection"]
    assert failed_over["time_to_detect"] >= float(failover.group(1)), (failed_over, failover)


def test_database_primary_failure_deviates_when_sentinel_is_too_slow(tmp_path: Path,
                                                                      state_dir: Path) -> None:
    require("redis-server", "redis-sentinel", "prometheus")
    ports = _database_ports()
    result = run_chaos("run", "-q", str(SCENARIOS / "database-primary-failure.yaml"),
                       *_vars(**ports, down_after="30000", writes_fail_for="2s",
                              detect_within="3s"), timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "recover_within 2s" in out.split("why:")[1], out
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert "+switch-master" not in (run_dir / "service-sentinel.log").read_text()
    # monitoring agrees: writes failing paged, no failover was ever seen
    failing, failed_over = json.loads((run_dir / "journal.json").read_text())[
        "detection"]["alerts"]
    assert failing["status"] == "PASS", failing
    assert failed_over["status"] == "FAIL" and failed_over["first_firing"] is None, failed_over


def _outage_ports() -> dict[str, str]:
    return {key: str(free_port()) for key in ("dependency_port", "proxy_port", "front_port",
                                               "outage_prometheus_port",
                                               "outage_alertmanager_port")}


@pytest.mark.needs("prometheus", "prometheus-alertmanager")
def test_dependency_outage_degrades_gracefully_and_the_breaker_opens_and_closes(
        tmp_path: Path, state_dir: Path) -> None:
    result = run_chaos("run", "-q", str(SCENARIOS / "dependency-outage.yaml"),
                       *_vars(**_outage_ports(), outage="3s"), timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    (run_dir,) = (tmp_path / "runs").iterdir()
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["verdict"] == "held", journal["reason"]
    assert [i["outcome"] for i in journal["injections"]] == ["reverted"], journal["injections"]
    # the front's own log: the breaker opened during the outage and closed after it
    front_log = (run_dir / "service-front.log").read_text()
    opened = front_log.index("breaker opened after 5 failed calls")
    assert "breaker closed" in front_log[opened:], front_log
    assert "burn_rate(1m) < 14.4" in out and "[FAIL]" not in out, out
    # users saw fallbacks, but on-call was paged: the breaker's alert, timed from the injection
    # (no earlier than its rule's `for: 1s`)
    alert, fast_burn = journal["detection"]["alerts"]
    assert alert["status"] == "PASS" and alert["labels"]["alertname"] == "PaymentsCircuitOpen"
    assert 1 <= alert["time_to_detect"] <= 5, alert
    # and the fast-burn page stayed silent, judged though Alertmanager started with the run
    assert fast_burn["alert"] == "alert {alertname=FrontErrorBudgetFastBurn, service=front}"
    assert fast_burn["status"] == "PASS" and fast_burn["gaps"] == [], journal["phases"][
        "detection"]
    assert 0 < fast_burn["source_answered"] < journal["injections"][0]["injected_at"]


@pytest.mark.needs("prometheus", "prometheus-alertmanager")
def test_dependency_outage_without_a_fallback_reaches_the_users(tmp_path: Path,
                                                                state_dir: Path) -> None:
    result = run_chaos("run", "-q", str(SCENARIOS / "dependency-outage.yaml"),
                       *_vars(**_outage_ports(), outage="3s", fallback=""), timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    why = out.split("why:")[1]
    assert "availability >= 99%" in why and "burn_rate(1m) < 14.4" in why, out
    # monitoring saw it too: the forbidden fast-burn page fired
    (run_dir,) = (tmp_path / "runs").iterdir()
    alerts = json.loads((run_dir / "journal.json").read_text())["detection"]["alerts"]
    fast_burn = next(a for a in alerts if "FrontErrorBudgetFastBurn" in a["alert"])
    assert fast_burn["status"] == "FAIL" and fast_burn["first_firing"] is not None, fast_burn


@pytest.mark.needs("prometheus", "prometheus-alertmanager")
def test_dependency_outage_alert_that_comes_too_late_fails_detection(
        tmp_path: Path, state_dir: Path) -> None:
    # the breaker's alert cannot fire sooner than its rule's `for: 1s`: asking for 500ms fails
    result = run_chaos("run", "-q", str(SCENARIOS / "dependency-outage.yaml"),
                       *_vars(**_outage_ports(), outage="3s", detect_within="500ms"),
                       timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "monitoring did not behave as expected" in out, out
    (run_dir,) = (tmp_path / "runs").iterdir()
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["verdict"] == "deviated"
    late, fast_burn = journal["detection"]["alerts"]
    assert late["status"] == "FAIL" and late["time_to_detect"] >= 1, late
    assert fast_burn["status"] == "PASS", journal["phases"]["detection"]  # steady state held
    assert {c["check"]: c["status"] for c in journal["phases"]["during"]["checks"]}[
        "availability >= 99%"] == "PASS"


@pytest.mark.needs("ip", "nft", "haproxy", "prometheus", "prometheus-alertmanager")
def test_region_loss_moves_traffic_to_region_b_and_leaves_no_rule_behind(
        tmp_path: Path, state_dir: Path) -> None:
    tag = f"{os.getpid() % 10000:04d}{random.randrange(100):02d}"
    regions = {"region_a": f"crg{tag}a", "region_b": f"crg{tag}b"}
    octet = random.randrange(100, 250), random.randrange(1, 250)
    nets = {"net_a": f"10.{octet[0]}.{octet[1]}", "net_b": f"10.{octet[0]}.{octet[1] + 1}"}
    ports = {key: str(free_port()) for key in ("lb_port", "lb_metrics_port",
                                                "region_prometheus_port",
                                                "region_alertmanager_port")}
    result = run_chaos("run", "-q", str(SCENARIOS / "region-loss.yaml"),
                       *_vars(**regions, **nets, **ports, outage="4s"), timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    (run_dir,) = (tmp_path / "runs").iterdir()
    # monitoring noticed: RegionDown for region A, from HAProxy's own exporter, in time
    (alert,) = json.loads((run_dir / "journal.json").read_text())["detection"]["alerts"]
    assert alert["status"] == "PASS" and alert["labels"]["server"] == "region-a", alert
    assert 0 < alert["time_to_detect"] <= 5, alert
    # HAProxy's own log: its health checks took region A out and put it back, and while it was
    # out every answered request came from region B
    lines = (run_dir / "service-haproxy.log").read_text().splitlines()
    down = next(i for i, line in enumerate(lines) if "regions/region-a is DOWN" in line)
    up = next(i for i, line in enumerate(lines) if "regions/region-a is UP" in line)
    answered = [line for line in lines[down:up] if '"GET / HTTP/1.1"' in line
                and " 200 " in line]
    assert len(answered) >= 50, lines[down:up]
    assert all("regions/region-b " in line for line in answered), answered
    # the regions service read each namespace's ruleset before deleting it: nothing left
    regions_log = (run_dir / "service-regions.log").read_text()
    for name in regions.values():
        assert f"region {name} nftables ruleset at teardown: empty" in regions_log, regions_log
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                            timeout=10, check=True).stdout
    assert not any(name in listed for name in regions.values()), listed


@pytest.mark.needs("nginx", "haproxy")
def test_edge_outage_fails_clients_over_to_the_other_edge(tmp_path: Path,
                                                          state_dir: Path) -> None:
    ports = {key: str(free_port())
             for key in ("origin_port", "edge_a_port", "edge_b_port", "site_port")}
    result = run_chaos("run", "-q", str(SCENARIOS / "edge-outage.yaml"), *_vars(**ports),
                       timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    (run_dir,) = (tmp_path / "runs").iterdir()
    journal = json.loads((run_dir / "journal.json").read_text())
    (kill,) = journal["injections"]
    # edge A's nginx is really gone (its pid), and the steering's health checks saw it
    assert not psutil.pid_exists(kill["identity"]["pid"])
    lines = (run_dir / "service-steering.log").read_text().splitlines()
    down = next(i for i, line in enumerate(lines) if "edges/edge-a is DOWN" in line)
    answered = [line for line in lines[down:] if '"GET / HTTP/1.1"' in line]
    assert len(answered) >= 100, lines[down:]
    assert all("edges/edge-b " in line and " 200 " in line for line in answered), answered


def _certificate_ports() -> dict[str, str]:
    return {key: str(free_port()) for key in ("payments_port", "tls_proxy_port",
                                               "tls_front_port", "prometheus_port",
                                               "alertmanager_port")}


@pytest.mark.needs("prometheus", "prometheus-alertmanager")
def test_certificate_expiry_is_refused_by_the_front_named_to_its_clients_and_alerts(
        tmp_path: Path, state_dir: Path) -> None:
    ports = _certificate_ports()
    done: list[subprocess.CompletedProcess[str]] = []
    runner = threading.Thread(target=lambda: done.append(run_chaos(
        "run", "-q", str(SCENARIOS / "certificate-expiry.yaml"),
        *_vars(**ports, tls_dir=str(tmp_path / "tls"), outage="3s"), timeout=180)))
    runner.start()
    # an independent client of the front, for the whole run: what its users saw
    seen: list[tuple[int, str]] = []
    url = f"http://127.0.0.1:{ports['tls_front_port']}/"
    while runner.is_alive():
        try:
            with urllib.request.urlopen(url, timeout=3) as answer:
                seen.append((answer.status, answer.read().decode()))
        except urllib.error.HTTPError as exc:
            seen.append((exc.code, exc.read().decode()))
        except OSError:
            pass  # not started yet, or stopped
        time.sleep(0.1)
    runner.join()
    (result,) = done
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    statuses = [status for status, _ in seen]
    first_refusal = statuses.index(503)
    assert 200 in statuses[:first_refusal] and 200 in statuses[first_refusal:], statuses
    refusals = [body for status, body in seen if status == 503]
    assert all("certificate has expired" in body for body in refusals), [
        body for body in refusals if "certificate has expired" not in body]
    # monitoring noticed: the expiry alert reached Alertmanager, timed from the injection
    (run_dir,) = (tmp_path / "runs").iterdir()
    journal = json.loads((run_dir / "journal.json").read_text())
    (alert,) = journal["detection"]["alerts"]
    (injection,) = journal["injections"]
    assert alert["status"] == "PASS", alert
    assert alert["labels"]["alertname"] == "DependencyCertificateExpired", alert
    # after the injection (a scrape that saw a refusal, then a rule evaluation), within 10 s
    assert 0 < alert["time_to_detect"] <= 10, alert
    assert alert["time_to_detect"] == pytest.approx(
        alert["first_firing"] - injection["injected_at"], abs=0.01)
    markdown = run_chaos("report", "--format", "markdown",
                         str(run_dir / "journal.json")).stdout
    assert "detected by DependencyCertificateExpired after" in markdown, markdown



def _spike_ports() -> dict[str, str]:
    return {key: str(free_port())
            for key in ("backend_port", "backend_proxy_port", "spike_front_port")}


def test_traffic_spike_is_shed_with_429_while_legitimate_clients_are_served(
        tmp_path: Path, state_dir: Path) -> None:
    result = run_chaos("run", "-q", str(SCENARIOS / "traffic-spike.yaml"), *_vars(**_spike_ports()),
                       timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    (run_dir,) = (tmp_path / "runs").iterdir()
    journal = json.loads((run_dir / "journal.json").read_text())
    # the flood arrived at 10x: 300/s for the 3 s spike, on top of 30/s
    assert "spike (300/s): 900 requests, 0 errors" in out, out
    # the front's own count: the flood past 60/s (about 900 - 3 x 60) was answered 429, and
    # nothing else (the shed probe's own requests hit the flooding client's bucket too)
    shed, total = map(int, re.search(r"shed (\d+) of (\d+) requests with 429",
                                     (run_dir / "service-front.log").read_text()).groups())
    assert 0.9 * (900 - 180) <= shed <= 900 - 180 + 40, (shed, total)
    during = {c["check"]: c for c in journal["phases"]["during"]["checks"]}
    assert during["shop >= 99%"]["status"] == "PASS", during
    assert during["shed >= 50%"]["value"] >= 0.5, during
    assert journal["recovery"]["seconds"] is not None and journal["recovery"]["seconds"] <= 2


def test_traffic_spike_without_the_rate_limiter_reaches_the_legitimate_clients(
        tmp_path: Path, state_dir: Path) -> None:
    result = run_chaos("run", "-q", str(SCENARIOS / "traffic-spike.yaml"),
                       *_vars(**_spike_ports(), rate_limit=""), timeout=180)
    out = result.stdout + result.stderr
    # the backend's two workers queue the flood: the shop's calls time out, the guardrail ends it
    assert result.returncode == 4, out
    assert "guardrail breached: shop < 50%" in out, out
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert "shed 0 of" in (run_dir / "service-front.log").read_text()
