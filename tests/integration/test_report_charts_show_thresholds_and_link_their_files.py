"""The HTML report of real runs: each chart draws the SLO its checks compare to (at the pixel
of the threshold), seconds where requests were sent but none succeeded are drawn and named,
the budget reads as burn rate and budget time, and each experiment links its journal, the
Markdown summary and its post-mortem draft — links that resolve to files beside the report.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXPERIMENTS, free_port, run_chaos


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("report")
    files = []
    for name in ("checkout-slo.yaml", "demo-crash-without-supervisor.yaml"):
        text = (EXPERIMENTS / name).read_text().replace('port: "18090"',
                                                         f'port: "{free_port()}"')
        (root / name).write_text(text)
        files.append(str(root / name))
    runs = root / "runs"
    result = run_chaos("run", *files, "--runs-dir", str(runs), "-q", timeout=180,
                       env={"CHAOS_STATE_DIR": str(root / "state")})
    assert result.returncode == 1, result.stdout + result.stderr  # the crash one deviates
    journals = sorted(runs.glob("*/journal.json"))
    out = root / "reports"
    made = run_chaos("report", *map(str, journals), "--format", "all", "-o", str(out),
                     timeout=60)
    assert made.returncode == 0, made.stderr
    loaded = [json.loads(p.read_text()) for p in journals]
    return out, (out / "report.html").read_text(), sorted(
        loaded, key=lambda j: j["experiment"]["title"] != loaded[0]["experiment"]["title"])


def charts(html: str) -> list[ET.Element]:
    """The charts, in order (the incident rows above them left out)."""
    return [c for c in (ET.fromstring(s) for s in re.findall(r"<svg .*?</svg>", html, re.S))
            if "timeline" not in (c.get("class") or "").split()]


def y_pixel(chart: ET.Element, value: float) -> float:
    _, top, _, height = (float(v) for v in chart.get("data-plot", "").split(","))
    low, high = float(chart.get("data-y-min", "0")), float(chart.get("data-y-max", "1"))
    return top + height - (value - low) / (high - low) * height


def thresholds(chart: ET.Element) -> dict[str, float]:
    return {g.get("data-check", ""): float(g.get("data-value", "nan"))
            for g in chart.iter("{http://www.w3.org/2000/svg}g")
            if "threshold" in (g.get("class") or "").split()}


def test_each_chart_draws_the_thresholds_of_its_checks(report: Any) -> None:
    _, html, _ = report
    availability, latency = charts(html)[:2]  # the checkout experiment's
    assert thresholds(availability) == {"availability >= 99%": 0.99,
                                        "availability >= 95%": 0.95}
    assert thresholds(latency)["latency.p95 < 350ms"] == pytest.approx(0.35)
    for chart in (availability, latency):
        for g in chart.iter("{http://www.w3.org/2000/svg}g"):
            if (g.get("class") or "") != "threshold":
                continue
            line = g.find("{http://www.w3.org/2000/svg}line")
            assert line is not None
            assert float(line.get("y1", "nan")) == pytest.approx(
                y_pixel(chart, float(g.get("data-value", "nan"))), abs=0.06)


def test_seconds_without_a_successful_request_are_named(report: Any) -> None:
    _, html, journals = report
    crash = next(j for j in journals if "crash" in j["experiment"]["title"])
    expected = sorted(float(r["t"]) for r in crash["series"]
                      if r["requests"] and r.get("p50") is None)
    assert expected, "the crashed service answered nothing after the kill"
    latency = charts(html)[3]
    marked = [g for g in latency.iter("{http://www.w3.org/2000/svg}g")
              if g.get("class") == "no-data"]
    assert marked and "no successful requests" in ET.tostring(latency, encoding="unicode")
    covered = [(float(g.get("data-start", "nan")), float(g.get("data-end", "nan")))
               for g in marked]
    assert all(any(a <= t < b for a, b in covered) for t in expected)
    assert sum(b - a for a, b in covered) == pytest.approx(len(expected))


def test_budget_reads_as_burn_rate_and_budget_time(report: Any) -> None:
    _, html, _ = report
    assert re.search(r"burn [0-9.e-]+× · [0-9.]+ (ms|s|min) of 216 min", html), \
        "30 days at 99.5% is 216 minutes of budget"
    assert "% of 30d" not in html


def test_each_experiment_links_its_files(report: Any) -> None:
    out, html, _ = report
    sections = re.findall(r'<p class="links">(.*?)</p>', html)
    assert len(sections) == 2
    for section in sections:
        targets = dict((label, href) for href, label in
                       re.findall(r'<a href="([^"]+)">([^<]+)</a>', section))
        assert (out / targets["journal"]).resolve().name == "journal.json"
        assert (out / targets["journal"]).exists()
        assert targets["Markdown summary"] == "report.md" and (out / "report.md").exists()
    crash_links = sections[1]
    (draft,) = re.findall(r'href="(postmortem-[^"]+)"', crash_links)
    assert (out / draft).exists()
    assert "postmortem-" not in sections[0]
