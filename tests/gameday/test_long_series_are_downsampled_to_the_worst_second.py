"""Hour-long runs on a page: the charts merge seconds into buckets of equal length and draw each
bucket at its WORST second (lowest availability, highest latency), so a single bad second of an
hour is still at full depth, at its x; fault windows, phases and breaches keep their exact times;
the chart says how long a step is. Runs that fit are drawn second by second, as before.

The journals are hand-made (the builder of the formula tests); the expected buckets are computed
here from the journal rows, independently of chaos.reports."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from chaos.reports import html, markdown, svg
from chaos.reports.analysis import Line
from chaos.reports.collection import Collection, Entry
from tests.support.svg_charts import (
    SVG,
    check_pixels,
    drawn_series,
    expected_availability,
    steps,
    svgs,
)
from tests.support.journals import journal

HOUR = 3600
OUTAGE, SPIKE, TRAFFIC_ERROR = 1234, 2500, 3000  # seconds of the one bad value each
FAULT = (1230.3, 1290.7)
BREACH = 1235.2
BEFORE = 0.5  # traffic rows are placed at before.started + t


def an_hour() -> dict[str, Any]:
    """One probe and runner traffic for an hour, all well except: the probe fails 3 of 4
    requests at OUTAGE, its p95/max spike to 900 ms at SPIKE, traffic has 1 error of 200 at
    TRAFFIC_ERROR (99.5%: it must not look like 100% anywhere)."""
    series = []
    for t in range(HOUR):
        series.append({"probe": "home", "t": t, "requests": 4, "errors": 3 if t == OUTAGE else 0,
                       "p50": 0.001 + (t % 7) * 1e-4, "p95": 0.9 if t == SPIKE else 0.003,
                       "max": 0.9 if t == SPIKE else 0.004 + (t % 5) * 1e-4})
        series.append({"probe": "traffic", "t": t, "requests": 200,
                       "errors": 1 if t == TRAFFIC_ERROR else 0, "p50": 0.001, "p95": 0.002,
                       "p99": 0.005 + (t % 3) * 1e-3, "lag_p99": 0.0001})
    phases = {"before": {"started": BEFORE, "finished": FAULT[0], "checks": []},
              "during": {"started": FAULT[0], "finished": FAULT[1], "checks": []},
              "after": {"started": FAULT[1], "finished": HOUR + 0.5,
                        "checks": [{"check": "c", "status": "FAIL", "measured": "", "events": 4}]}}
    injections = [{"fault": "freeze", "type": "process.suspend", "target": "service home",
                   "injected_at": FAULT[0], "reverted_at": FAULT[1], "outcome": "reverted"}]
    events = [{"event": "guardrail.breached", "t": BREACH, "check": "availability >= 50%"}]
    return journal("deviated", [], duration=HOUR + 1.0, series=series, phases=phases,
                   injections=injections, events=events,
                   experiment={"title": "an hour", "faults": [{"name": "freeze"}]})


@pytest.fixture(scope="module")
def report() -> tuple[dict[str, Any], list[ET.Element], str]:
    j = an_hour()
    collection = Collection("long", (Entry("hour.yaml", j),))
    return j, svgs(html.render(collection)), markdown.render(collection)


def buckets(values: list[tuple[float, float]], seconds: int,
            worst: Any) -> list[tuple[float, float]]:
    """The expected steps: seconds grouped by [origin + k*n, origin + (k+1)*n), worst value."""
    origin = values[0][0] % 1
    grouped: dict[int, list[float]] = {}
    for t, v in values:
        grouped.setdefault(int((t - origin) // seconds), []).append(v)
    return [(origin + k * seconds, worst(vs)) for k, vs in sorted(grouped.items())]


def geometry(chart: ET.Element) -> tuple[Any, Any]:
    left, top, width, height = (float(v) for v in chart.get("data-plot", "").split(","))
    x_max, y_min, y_max = (float(chart.get(k, "")) for k in ("data-x-max", "data-y-min",
                                                             "data-y-max"))
    return (lambda t: left + t / x_max * width,
            lambda v: top + height - (v - y_min) / (y_max - y_min) * height)


def check_buckets(chart: ET.Element, path: ET.Element, expected: list[tuple[float, float]],
                  seconds: int) -> None:
    """Each bucket is one step over exactly its seconds (the last ends at the plot's edge)."""
    px, py = geometry(chart)
    x_max = float(chart.get("data-x-max", ""))
    assert path.get("data-step") == str(seconds)
    drawn = steps(path.get("d", ""))
    assert len(drawn) == len(expected) <= svg.MAX_STEPS
    for (x0, x1, y), (t, v) in zip(drawn, expected):
        assert x0 == pytest.approx(px(t), abs=0.06)
        assert x1 == pytest.approx(px(min(t + seconds, x_max)), abs=0.06)
        assert y == pytest.approx(py(v), abs=0.06)


def caption(chart: ET.Element) -> str:
    (text,) = [t for t in chart.iter(f"{SVG}text") if t.get("class") == "resolution"]
    return text.text or ""


def test_an_hour_of_availability_keeps_its_bad_seconds_at_their_x(report: Any) -> None:
    j, charts, _ = report
    availability = charts[0]
    seconds = 10  # 3601 s in at most 600 steps: 7 s would do; 10 s is the next readable length
    assert "each step is 10s" in caption(availability) and "worst second" in caption(
        availability) and "lowest" in caption(availability)
    drawn = drawn_series(availability)
    expected = expected_availability(j)
    assert set(drawn) == set(expected) == {"home", "traffic"}
    for name, values in expected.items():
        check_buckets(availability, drawn[name], buckets(values, seconds, min), seconds)
    px, py = geometry(availability)
    # the 25% second at 1234 s is the whole step over [1230 s, 1240 s): not averaged to 92.5%
    (outage,) = [s for s in steps(drawn["home"].get("d", "")) if s[2] != pytest.approx(py(1.0))]
    assert outage == pytest.approx((px(1230), px(1240), py(0.25)), abs=0.06)
    (error,) = [s for s in steps(drawn["traffic"].get("d", "")) if s[2] != pytest.approx(py(1.0))]
    assert error == pytest.approx((px(3000.5), px(3010.5), py(0.995)), abs=0.06)


def test_an_hour_of_latency_keeps_its_spike(report: Any) -> None:
    j, charts, _ = report
    latency = charts[1]
    assert "each step is 10s" in caption(latency) and "highest" in caption(latency)
    drawn = drawn_series(latency)
    for stat in ("p50", "p95", "max"):
        values = [(float(r["t"]), r[stat]) for r in j["series"] if r["probe"] == "home"]
        check_buckets(latency, drawn[f"home {stat}"], buckets(values, 10, max), 10)
    traffic = [(r["t"] + BEFORE, r["p99"]) for r in j["series"] if r["probe"] == "traffic"]
    check_buckets(latency, drawn["traffic p99"], buckets(traffic, 10, max), 10)
    px, py = geometry(latency)
    (spike,) = [s for s in steps(drawn["home p95"].get("d", "")) if s[2] < py(0.5)]
    assert spike == pytest.approx((px(2500), px(2510), py(0.9)), abs=0.06)


def test_faults_phases_and_breaches_keep_their_exact_times(report: Any) -> None:
    _, charts, _ = report
    for chart in charts:
        px, _ = geometry(chart)
        (rect,) = [r for r in chart.iter(f"{SVG}rect") if r.get("class") == "fault"]
        assert (float(rect.get("data-start", "")), float(rect.get("data-end", ""))) == FAULT
        assert float(rect.get("x", "")) == pytest.approx(px(FAULT[0]), abs=0.06)
        assert float(rect.get("width", "")) == pytest.approx(px(FAULT[1]) - px(FAULT[0]),
                                                             abs=0.11)
        phase_lines = [float(line.get("x1", "")) for line in chart.iter(f"{SVG}line")
                       if line.get("class") == "phase"]
        assert phase_lines == pytest.approx([px(FAULT[0]), px(FAULT[1])], abs=0.06)
        (breach,) = [g for g in chart.iter(f"{SVG}g") if g.get("class") == "breach"]
        assert float(breach.get("data-t", "")) == BREACH
        assert float(next(breach.iter(f"{SVG}line")).get("x1", "")) == pytest.approx(
            px(BREACH), abs=0.06)


@pytest.mark.parametrize("seconds", [svg.MAX_STEPS - 1, svg.MAX_STEPS])
def test_a_series_that_fits_is_drawn_second_by_second(seconds: int) -> None:
    values = [(float(t), 1.0 if t % 97 else 0.5) for t in range(seconds)]
    chart = ET.fromstring(svg.chart("availability", [Line("home", tuple(values))],
                                    x_max=seconds + 1, y_max=1.0, worst="lowest"))
    (path,) = drawn_series(chart).values()
    assert path.get("data-step") == "1"
    assert not [t for t in chart.iter(f"{SVG}text") if t.get("class") == "resolution"]
    check_pixels(chart, path, values)


def test_one_second_over_the_bound_is_merged() -> None:
    seconds = svg.MAX_STEPS + 1
    values = [(float(t), 0.002 if t != 301 else 0.7) for t in range(seconds)]
    chart = ET.fromstring(svg.chart("latency", [Line("home p95", tuple(values))],
                                    x_max=seconds + 1))
    (path,) = drawn_series(chart).values()
    assert "each step is 2s" in caption(chart)
    check_buckets(chart, path, buckets(values, 2, max), 2)


def test_the_markdown_sparkline_shows_the_worst_second_of_each_block(report: Any) -> None:
    _, _, text = report
    rows = {line.split()[0]: line[13:] for line in text.splitlines()
            if line.startswith("    ") and line.split()[0] in ("home", "traffic", "faults")}
    assert "Availability per 60s, the worst second of each" in text
    block = 60  # 3601 s in at most 90 blocks
    width = math.ceil((HOUR + 1) / block)
    assert len(rows["home"]) == len(rows["traffic"]) == width <= markdown.MAX_WIDTH
    # 25%: the block holding 1234 s; 99.5% is not a full block; every other block is 100%,
    # but the last, [3600 s, 3660 s): the run's last second (to 3601 s) measured nothing
    assert {i: c for i, c in enumerate(rows["home"]) if c != "█"} == {OUTAGE // block: "▃",
                                                                      width - 1: " "}
    assert {i: c for i, c in enumerate(rows["traffic"]) if c != "█"} == {
        int((TRAFFIC_ERROR + BEFORE) // block): "▇", width - 1: " "}
    assert [i for i, c in enumerate(rows["faults"]) if c == "^"] == [
        int(FAULT[0] // block), int(FAULT[1] // block)]
