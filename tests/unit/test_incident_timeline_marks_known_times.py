"""The incident row and the tick charts on hand-made journals whose times are known: each mark
sits at its time on the charts' axis and is labelled with its time since the first injection,
a fact the journal lacks has no mark, a short run's ticks are drawn over exactly their 100 ms,
and a journal without ticks is charted per second as before."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from chaos.records import RunRecord
from chaos.reports import html, markdown, svg, timeline
from chaos.reports.analysis import Line, facts
from chaos.reports.collection import Collection, Entry
from tests.support.svg_charts import SVG, drawn_series, incident_marks, steps, svgs

# the probe `home` answers every 100 ms; the server fails from 4.23 s to 6.47 s of the run
FAILING = (4.2, 6.4)  # the ticks those instants fall in


def samples(start: float = 0.0, end: float = 12.0) -> list[dict[str, Any]]:
    ticks = [round(i / 10, 1) for i in range(int(start * 10), int(end * 10))]
    return [{"t": t, "probe": "home", "requests": 1,
             "errors": int(FAILING[0] <= t <= FAILING[1]), "p50": 0.002, "p95": 0.002,
             "max": 0.002} for t in ticks]


def per_second(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seconds: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        seconds.setdefault(int(row["t"]), []).append(row)
    return [{"t": s, "probe": "home", "requests": len(r), "errors": sum(x["errors"] for x in r),
             "p50": 0.002, "p95": 0.002, "max": 0.002} for s, r in sorted(seconds.items())]


def journal(*, fine: bool = True, alerts: bool = True, revert: bool = True,
            inject: bool = True) -> RunRecord:
    rows = samples()
    data: dict[str, Any] = {
        "schema": "chaos.journal/v1", "run": "r-1", "verdict": "deviated", "exit_code": 1,
        "experiment": {"title": "Primary dies", "source": "x.yaml",
                       "faults": [{"name": "kill-primary", "duration": 5.0}]},
        "duration": 12.0,
        "phases": {"before": {"started": 0.0, "finished": 4.0},
                   "during": {"started": 4.0, "finished": 9.0},
                   "after": {"started": 9.0, "finished": 12.0}},
        "injections": [{"fault": "kill-primary", "injected_at": 4.04,
                        "reverted_at": 9.0 if revert else None,
                        "outcome": "reverted" if revert else "injected"}] if inject else [],
        "recovery": {"seconds": 1.5 if revert else None, "within": 5.0},
        "detection": {"seconds": None, "alerts": [
            {"alert": "PrimaryDown", "expected": True, "first_firing": 7.25,
             "time_to_detect": 3.2, "status": "PASS", "labels": {"alertname": "PrimaryDown"}}]
            if alerts else []},
        "series": per_second(rows), "events": []}
    if fine:
        data["fine_series"] = {"step": 0.1, "points": rows}
    return RunRecord.from_json(data, "fixture")


def row_of(record: RunRecord) -> ET.Element:
    f = facts(Entry("x.yaml", record))
    return ET.fromstring(svg.timeline("incident", timeline.marks(f, record), x_max=f.end,
                                      faults=f.faults))


def marks(row: ET.Element) -> dict[str, tuple[float, str]]:
    """{kind: (x of its dot, its label)}."""
    return {kind: (x, label) for kind, (_, x, label) in incident_marks(row).items()}


def x_of(chart: ET.Element, t: float) -> float:
    left, _, width, _ = (float(v) for v in chart.get("data-plot", "").split(","))
    return left + t / float(chart.get("data-x-max", "")) * width


def test_each_mark_sits_at_its_time_labelled_from_the_first_injection() -> None:
    row = row_of(journal())
    expected = {"fault injected": (4.04, "+0.0s"), "first error": (4.2, "+0.2s"),
                "served again": (6.5, "+2.5s"), "alert fired": (7.25, "+3.2s"),
                "reverted": (9.0, "+5.0s"), "recovered": (10.5, "+6.5s")}
    found = marks(row)
    assert sorted(found) == sorted(expected)
    for kind, (t, since) in expected.items():
        x, label = found[kind]
        assert x == pytest.approx(x_of(row, t), abs=0.06), kind
        assert label == f"{kind} {since}"


def test_labels_of_marks_close_together_do_not_overlap() -> None:
    row = row_of(journal())
    boxes = []
    for g in row.iter(f"{SVG}g"):
        text = g.find(f"{SVG}text")
        if g.get("class") == "mark" and text is not None:
            x, width = float(text.get("x", "")), 6.2 * len(text.text or "")
            x0 = x if text.get("text-anchor") == "start" else x - width
            boxes.append((float(text.get("y", "")), x0, x0 + width))
    for i, (y, a0, a1) in enumerate(boxes):
        for y2, b0, b1 in boxes[i + 1:]:
            assert y != y2 or a1 <= b0 or b1 <= a0


def test_facts_the_journal_lacks_have_no_mark() -> None:
    found = marks(row_of(journal(alerts=False, revert=False)))
    assert sorted(found) == ["fault injected", "first error", "served again"]
    record = journal(inject=False)
    assert timeline.marks(facts(Entry("x.yaml", record)), record) == ()


def test_at_one_second_resolution_the_marks_are_whole_seconds() -> None:
    """A journal without ticks (an old one, a long run): the first error is in the second the
    injection happened in, served again at the first clean second."""
    found = marks(row_of(journal(fine=False)))
    row = row_of(journal(fine=False))
    assert found["first error"][0] == pytest.approx(x_of(row, 4.04), abs=0.06)
    assert found["served again"][0] == pytest.approx(x_of(row, 7.0), abs=0.06)


def test_a_tick_is_drawn_over_exactly_its_100_ms() -> None:
    values = ((4.0, 1.0), (4.1, 1.0), (4.2, 0.0), (4.3, 0.0), (4.4, 1.0))
    chart = ET.fromstring(svg.chart("availability", [Line("home", values)], x_max=10,
                                    y_max=1.0, resolution=0.1))
    (path,) = drawn_series(chart).values()
    assert path.get("data-step") == "0.1"
    drawn = steps(path.get("d", ""))
    assert len(drawn) == len(values)
    for (x0, x1, _), (t, _) in zip(drawn, values):
        assert x0 == pytest.approx(x_of(chart, t), abs=0.06)
        assert x1 == pytest.approx(x_of(chart, t + 0.1), abs=0.06)


def test_the_report_charts_ticks_when_the_journal_has_them_and_seconds_when_not() -> None:
    for fine, step, title in ((True, "0.1", "per 100 ms"), (False, "1", "per second")):
        page = html.render(Collection("t", [Entry("x.yaml", journal(fine=fine))]))
        availability = next(c for c in svgs(page) if c.findtext(f"{SVG}title", "")
                            .startswith("Availability"))
        assert title in availability.findtext(f"{SVG}title", "")
        path = drawn_series(availability)["home"]
        assert path.get("data-step") == step
        drop = next(float(p.split(",")[0]) for p in path.get("data-values", "").split(";")
                    if float(p.split(",")[1]) < 1)
        assert drop == (4.2 if fine else 4.0)


def test_the_markdown_summary_has_the_row_as_one_line() -> None:
    text = markdown.render(Collection("t", [Entry("x.yaml", journal())]))
    (line,) = [ln for ln in text.splitlines() if ln.startswith("- timeline: ")]
    assert line == ("- timeline: fault injected +0.0s · first error +0.2s · served again +2.5s"
                    " · alert fired +3.2s · reverted +5.0s · recovered +6.5s")
