"""Reading the report's SVG charts back into numbers: the series each chart draws, its steps in
pixels, and the check that every second of a journal is drawn over exactly that second. Report
tests compare what was drawn with what the journal measured, never with the renderer's code.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

SVG = "{http://www.w3.org/2000/svg}"


def svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", html, re.DOTALL)]


def expected_availability(journal: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """Straight from the journal: per second, the share of requests without an error; traffic
    seconds count from the traffic's start, i.e. the before phase's start."""
    offset = journal["phases"]["before"]["started"]
    lines: dict[str, list[tuple[float, float]]] = {}
    for row in journal["series"]:
        if row["requests"]:
            x = row["t"] + (offset if row["probe"] == "traffic" else 0)
            lines.setdefault(row["probe"], []).append(
                (x, (row["requests"] - row["errors"]) / row["requests"]))
    return lines


def drawn_series(chart: ET.Element) -> dict[str, ET.Element]:
    """The chart's series by name; a series drawn once for several identical ones
    (`home p95 = max`) is listed under each name (`home p95`, `home max`)."""
    found = {}
    for path in chart.iter(f"{SVG}path"):
        if path.get("class") != "series":
            continue
        first, *others = path.get("data-series", "").split(" = ")
        prefix = first.rpartition(" ")[0]
        for name in [first, *(f"{prefix} {o}".strip() for o in others)]:
            found[name] = path
    return found


def steps(d: str) -> list[tuple[float, float, float]]:
    """The horizontal segments (x from, x to, y) of a path of M x,y / H x / V y commands."""
    x = y = 0.0
    segments = []
    for command, args in re.findall(r"([MHV])\s*([-\d.,]+)", d):
        if command == "M":
            x, y = (float(v) for v in args.split(","))
        elif command == "V":
            y = float(args)
        else:
            segments.append((x, float(args), y))
            x = float(args)
    return segments


def check_pixels(svg: ET.Element, line: ET.Element, values: list[tuple[float, float]]) -> None:
    """Every second of the journal is a horizontal step over exactly that second, [t, t+1),
    at its value: nothing drawn before the second it was measured in."""
    left, top, width, height = (float(v) for v in svg.get("data-plot", "").split(","))
    x_max, y_min, y_max = (float(svg.get(k, "")) for k in ("data-x-max", "data-y-min",
                                                           "data-y-max"))
    drawn = steps(line.get("d", ""))
    assert len(drawn) == len(values)
    for (x0, x1, py), (t, v) in zip(drawn, values):
        assert x0 == pytest.approx(left + t / x_max * width, abs=0.06)
        assert x1 == pytest.approx(left + (t + 1) / x_max * width, abs=0.06)
        assert py == pytest.approx(top + height - (v - y_min) / (y_max - y_min) * height, abs=0.06)
