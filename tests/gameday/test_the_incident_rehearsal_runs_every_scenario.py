"""gamedays/incident-rehearsal.yaml runs as shipped (shorter outages and free ports by --var):
every scenario starts its real components, holds its hypothesis, and the reports name them all.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, run_chaos

SCENARIOS = ("database-primary-failure", "dependency-outage", "edge-outage", "region-loss",
             "certificate-expiry", "traffic-spike")


@pytest.mark.needs("ip", "nft", "haproxy", "nginx", "redis-server", "redis-sentinel",
                   "prometheus", "prometheus-alertmanager")
def test_the_incident_rehearsal_holds_and_reports_each_scenario(tmp_path: Path) -> None:
    tag = f"{os.getpid() % 10000:04d}{random.randrange(100):02d}"
    octet = random.randrange(100, 250), random.randrange(1, 250)
    ports = ("primary_port", "replica_port", "sentinel_port", "kv_port", "dependency_port",
             "proxy_port", "front_port", "lb_port", "origin_port", "edge_a_port", "edge_b_port",
             "site_port", "payments_port", "tls_proxy_port", "tls_front_port",
             "prometheus_port", "alertmanager_port", "outage_prometheus_port",
             "outage_alertmanager_port", "lb_metrics_port", "region_prometheus_port",
             "region_alertmanager_port", "backend_port", "backend_proxy_port",
             "spike_front_port", "db_prometheus_port")
    values = {**{key: str(free_port()) for key in ports}, "outage": "3s", "spike_for": "2s",
              "region_a": f"cgd{tag}a", "region_b": f"cgd{tag}b",
              "net_a": f"10.{octet[0]}.{octet[1]}", "net_b": f"10.{octet[0]}.{octet[1] + 1}",
              "tls_dir": str(tmp_path / "tls")}
    args = [arg for key, value in values.items() for arg in ("--var", f"{key}={value}")]
    env = {"CHAOS_STATE_DIR": str(tmp_path / "state")}
    result = run_chaos("gameday", "run", str(ROOT / "gamedays" / "incident-rehearsal.yaml"),
                       "--out", str(tmp_path / "out"), *args, env=env, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    (directory,) = (tmp_path / "out").iterdir()
    aggregate = json.loads((directory / "gameday.json").read_text())
    experiments = aggregate["experiments"]
    assert [Path(e["file"]).stem for e in experiments] == list(SCENARIOS)
    assert [e["verdict"] for e in experiments] == ["held"] * 6, experiments
    assert [e["step"] for e in experiments] == [0, 0, 0, 1, 1, 2]
    journals = [json.loads((directory / e["journal"]).read_text()) for e in experiments]
    # the time to failover each scenario measured is in its journal
    assert all(j["recovery"]["seconds"] is not None for j in journals), journals
    # the database failover, dependency outage, region loss and certificate expiry were
    # detected: the expected alerts fired, the forbidden ones did not
    for scenario in ("database-primary-failure", "dependency-outage", "region-loss",
                     "certificate-expiry"):
        alerts = journals[SCENARIOS.index(scenario)]["detection"]["alerts"]
        assert alerts and all(a["status"] == "PASS" for a in alerts), alerts
        assert all(a["time_to_detect"] > 0 for a in alerts if a["expected"]), alerts
    markdown = (directory / aggregate["reports"]["markdown"]).read_text()
    for journal in journals:
        assert journal["experiment"]["title"] in markdown, markdown
    assert aggregate["score"] == 100, aggregate
