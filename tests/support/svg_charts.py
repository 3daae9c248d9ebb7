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
    """The charts of a page, in order (not the incident rows: `incident_rows`)."""
    return [c for c in _all_svgs(html) if "timeline" not in (c.get("class") or "").split()]


def incident_rows(html: str) -> list[ET.Element]:
    return [c for c in _all_svgs(html) if "timeline" in (c.get("class") or "").split()]


def incident_marks(row: ET.Element) -> dict[str, tuple[float, float, str]]:
    """An incident row's marks: {kind: (t, x of its dot on the axis, its label)}."""
    found = {}
    for g in row.iter(f"{SVG}g"):
        if g.get("class") == "mark":
            (circle,) = g.iter(f"{SVG}circle")
            found[g.get("data-mark", "")] = (float(g.get("data-t", "")),
                                             float(circle.get("cx", "")),
                                             g.findtext(f"{SVG}text", ""))
    return found


def _all_svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", html, re.DOTALL)]


def rows(journal: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows the charts draw: a short run's ticks (`fine_series`) when the journal has
    them, else its seconds."""
    fine = journal.get("fine_series")
    return list(fine["points"]) if fine else list(journal["series"])


def step_of(journal: dict[str, Any]) -> float:
    """Seconds per drawn row: 0.1 for ticks, 1 for seconds."""
    fine = journal.get("fine_series")
    return float(fine["step"]) if fine else 1.0


def expected_availability(journal: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """Straight from the journal: per row (a second, or a short run's tick), the share of
    requests without an error; traffic rows count from the traffic's start, i.e. the before
    phase's start."""
    offset = journal["phases"]["before"]["started"]
    lines: dict[str, list[tuple[float, float]]] = {}
    for row in rows(journal):
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


def check_pixels(svg: ET.Element, line: ET.Element, values: list[tuple[float, float]],
                 step: float = 1.0) -> None:
    """Every row of the journal is a horizontal step over exactly its second (or tick of
    `step` seconds), [t, t+step), at its value: nothing drawn before it was measured."""
    left, top, width, height = (float(v) for v in svg.get("data-plot", "").split(","))
    x_max, y_min, y_max = (float(svg.get(k, "")) for k in ("data-x-max", "data-y-min",
                                                           "data-y-max"))
    drawn = steps(line.get("d", ""))
    assert len(drawn) == len(values)
    for (x0, x1, py), (t, v) in zip(drawn, values):
        assert x0 == pytest.approx(left + t / x_max * width, abs=0.06)
        assert x1 == pytest.approx(left + (t + step) / x_max * width, abs=0.06)
        assert py == pytest.approx(top + height - (v - y_min) / (y_max - y_min) * height, abs=0.06)
