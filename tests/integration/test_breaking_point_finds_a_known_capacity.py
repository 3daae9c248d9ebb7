"""A breaking-point search against a service whose capacity is fixed by construction (20 slots,
100 ms each: 200 req/s): it must hold every step below the capacity and break at the first one
above it, naming the stop condition; a step the generator cannot send is INVALID, never "the
service broke". Through the real CLI; the journal and the terminal summary are read."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_chaos


@pytest.fixture
def service() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.fixed_capacity_server",
                             "--slots", "20", "--service-time", "0.1"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    proc.stdout.close()
    yield port
    proc.terminate()
    proc.wait(10)


def journal_of(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(next((tmp_path / "runs").glob("*/journal.json")).read_text())


def test_the_search_holds_below_the_capacity_and_breaks_above_it(
        tmp_path: Path, state_dir: Path, service: int) -> None:
    path = tmp_path / "capacity.yaml"
    path.write_text(f"""title: how much does the fixed pool take
hypothesis:
  traffic:
    http: {{url: "http://127.0.0.1:{service}/", max_lag: 250ms}}
    profile:
      breaking_point: {{from: 50/s, step: 60/s, every: 2s, max: 400/s,
                        until: [latency.p99 > 250ms, availability < 99%]}}
  checks: [availability >= 99%]
  before: {{window: 10s}}
faults: []
""")
    result = run_chaos("run", str(path), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    capacity = journal_of(tmp_path)["capacity"]
    # 50, 110, 170 are below 200 req/s; 230 is above: its queue grows 30 requests a second
    assert capacity["sustainable_rate"] == 170, capacity
    assert capacity["broken_at"] == 230 and capacity["broken_by"] == "latency.p99 > 250ms"
    assert capacity["invalid"] is None
    assert [s["status"] for s in capacity["steps"]] == ["held", "held", "held", "broken"]
    assert all(abs(s["requests"] - 2 * s["rate"]) <= 2 for s in capacity["steps"])
    assert "capacity: sustainable 170 req/s; broke at 230 req/s (latency.p99 > 250ms)" in (
        result.stdout)
    html = tmp_path / "report.html"
    journal = next((tmp_path / "runs").glob("*/journal.json"))
    assert run_chaos("report", "--format", "html", "-o", str(html), str(journal)).returncode == 0
    page = html.read_text()
    assert "<h3>Capacity</h3><p>sustainable 170 req/s; broke at 230 req/s" in page
    assert page.count('<span class="badge PASS">held</span>') == 3
    assert page.count('<span class="badge FAIL">broken</span>') == 1
    # then the rate steps back to `from`: the second after the search sends 50 requests
    series = {r["t"]: r for r in journal_of(tmp_path)["series"] if r["probe"] == "traffic"}
    assert abs(series[9]["requests"] - 50) <= 3, series


def test_a_step_the_generator_cannot_send_is_invalid_not_broken(
        tmp_path: Path, state_dir: Path, service: int) -> None:
    path = tmp_path / "overload.yaml"
    path.write_text(f"""title: more than one process can send
hypothesis:
  traffic:
    http: {{url: "http://127.0.0.1:{service}/", timeout: 1s}}
    profile:
      breaking_point: {{from: 300000/s, step: 1/s, every: 1s, max: 300000/s,
                        until: [availability < 1%]}}
  checks: [availability >= 0%]
  before: {{window: 1s}}
faults: []
""")
    result = run_chaos("run", str(path), timeout=120)
    capacity = journal_of(tmp_path)["capacity"]
    assert capacity["broken_at"] is None and capacity["sustainable_rate"] is None, capacity
    assert "generator" in capacity["invalid"] and capacity["steps"][0]["status"] == "invalid"
    assert result.returncode == 2, result.stdout + result.stderr
