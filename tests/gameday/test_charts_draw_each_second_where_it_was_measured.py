"""The charts' geometry without a game day: each per-second value is a step over exactly its
second (never drawn before it was measured), gaps break the line, identical series are drawn
once under both names, and an instant fault stays visible."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from chaos.reports import svg
from chaos.reports.analysis import Line, Window
from tests.support.svg_charts import (
    SVG,
    check_pixels,
    drawn_series,
    steps,
)


def test_a_drop_in_the_second_of_the_injection_starts_at_that_second() -> None:
    values = [(0.0, 1.0), (1.0, 1.0), (2.0, 1.0), (3.0, 1.0), (4.0, 0.5), (5.0, 0.0), (6.0, 1.0)]
    chart = ET.fromstring(svg.chart("availability", [Line("home", tuple(values))], x_max=8,
                                    y_max=1.0, faults=[Window("freeze", 4.3, 6.2)]))
    (path,) = drawn_series(chart).values()
    check_pixels(chart, path, values)
    left, _, width, _ = (float(v) for v in chart.get("data-plot", "").split(","))
    first_drop = next(x0 for x0, _, y in steps(path.get("d", "")) if y > steps(
        path.get("d", ""))[0][2])
    assert first_drop == pytest.approx(left + 4 / 8 * width, abs=0.06)  # at 4 s, not 3 s


def test_seconds_without_a_value_break_the_line() -> None:
    values = [(0.0, 0.002), (1.0, 0.003), (4.0, 0.002)]  # 2 s and 3 s: nothing answered
    chart = ET.fromstring(svg.chart("latency", [Line("home p50", tuple(values))], x_max=5))
    (path,) = drawn_series(chart).values()
    assert path.get("d", "").count("M") == 2
    check_pixels(chart, path, values)


def test_identical_series_are_drawn_once_under_both_names() -> None:
    same = ((0.0, 0.004), (1.0, 0.005))
    chart = ET.fromstring(svg.chart("latency", [Line("home p50", ((0.0, 0.001), (1.0, 0.002))),
                                                Line("home p95", same), Line("home max", same)],
                                    x_max=2))
    paths = [p for p in chart.iter(f"{SVG}path") if p.get("class") == "series"]
    assert sorted(p.get("data-series", "") for p in paths) == ["home p50", "home p95 = max"]
    series = drawn_series(chart)
    assert series["home p95"] is series["home max"]
    legend = " ".join(t.text or "" for t in chart.iter(f"{SVG}text") if t.get("class") ==
                      "legend")
    assert "home p95 = max" in legend and "fault" not in legend


def test_an_instant_fault_is_a_visible_line() -> None:
    chart = ET.fromstring(svg.chart("availability", [Line("home", ((0.0, 1.0),))], x_max=10,
                                    y_max=1.0, faults=[Window("crash", 3.0, 3.005)]))
    (rect,) = [r for r in chart.iter(f"{SVG}rect") if r.get("class") == "fault"]
    assert float(rect.get("width", "")) >= 2 and float(rect.get("fill-opacity", "")) > 0.5
