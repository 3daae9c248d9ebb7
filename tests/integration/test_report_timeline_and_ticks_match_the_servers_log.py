"""A short run against a server that fails at a known instant (a signal sent by the run's first
fault) and answers again at another (the second fault's signal), logging every request: the
HTML report's incident row puts its marks at the journal's times and within the 100 ms tick of
the server's first and last error, the availability chart draws the drop in the tick it
happened in (not at the start of its second), marks the journal has no fact for are absent,
and the Markdown summary says the same in one line."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, run_chaos
from tests.support.svg_charts import (SVG, drawn_series, incident_marks, incident_rows, steps,
                                      svgs)

SERVER = Path(__file__).resolve().parent / "flipping_http_server.py"
TICK = 0.1
# a request arrives a few ms after its intended send time (lag, loopback): at a tick's end it
# may land in the next tick
SLACK = 0.03

EXPERIMENT = """\
title: The front fails at a signal and answers again at another
vars:
  port: "{port}"
services:
  - name: front
    run: ["${{python}}", "{server}", --port, "${{port}}", --log, "{log}"]
    ready: {{tcp: "127.0.0.1:${{port}}", timeout: 15s}}
hypothesis:
  traffic: {{http: {{url: "http://127.0.0.1:${{port}}/", rate: 200/s, timeout: 1s,
                    max_lag: 100ms}}}}
  checks:
    - availability >= 99%
  before: {{window: 1s}}
  during: {{every: 250ms, window: 2500ms}}
  after: {{settle: 500ms, window: 1s}}
faults:
  - name: fail-front
    type: process.kill
    target: {{service: front}}
    with: {{signal: USR1}}
    start: 500ms
  - name: heal-front
    type: process.kill
    target: {{service: front}}
    with: {{signal: USR2}}
    start: 1450ms
limits: {{max_duration: 1m, max_targets: 1}}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("timeline")
    log = root / "requests.log"
    experiment = root / "flip.yaml"
    experiment.write_text(EXPERIMENT.format(port=free_port(), server=SERVER, log=log))
    runs = root / "runs"
    result = run_chaos("run", str(experiment), "--runs-dir", str(runs), "-q", timeout=120,
                       env={"CHAOS_STATE_DIR": str(root / "state")})
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = runs.glob("*/journal.json")
    out = root / "reports"
    made = run_chaos("report", str(path), "--format", "all", "-o", str(out), timeout=60)
    assert made.returncode == 0, made.stderr
    journal = json.loads(path.read_text())
    started = next(e for e in journal["events"] if e["event"] == "run.started")
    origin = started["ts"] - started["t"]  # the wall clock at run time 0
    answered = [(float(t) - origin, int(s)) for t, s in
                (line.split() for line in log.read_text().splitlines())]
    failed = [t for t, status in answered if status == 500]
    assert failed and any(status == 200 and t > failed[-1] for t, status in answered)
    return {"journal": journal, "html": (out / "report.html").read_text(),
            "markdown": (out / "report.md").read_text(), "first": failed[0],
            "last": failed[-1]}


def x_of(chart: ET.Element, t: float) -> float:
    left, _, width, _ = (float(v) for v in chart.get("data-plot", "").split(","))
    return left + t / float(chart.get("data-x-max", "")) * width


def incident_row(html: str) -> ET.Element:
    (row,) = incident_rows(html)
    return row


def test_the_marks_sit_at_the_journals_times_and_the_servers_ticks(run: dict[str, Any]) -> None:
    journal, row = run["journal"], incident_row(run["html"])
    found = {kind: (t, x) for kind, (t, x, _) in incident_marks(row).items()}
    injected = min(i["injected_at"] for i in journal["injections"])
    t, x = found["fault injected"]
    assert t == pytest.approx(injected, abs=1e-3)
    assert x == pytest.approx(x_of(row, injected), abs=0.06)
    # the first error: in the tick of the server's first 500 (or at the injection, when that
    # tick began before it); at one-second resolution it could be up to a second early
    t, x = found["first error"]
    assert t <= run["first"] + SLACK and run["first"] < max(t, injected) + TICK + SLACK
    assert x == pytest.approx(x_of(row, t), abs=0.06)
    # served again: the first tick without errors after them, so just after the last 500
    t, _ = found["served again"]
    assert run["last"] < t <= run["last"] + TICK + SLACK
    recovery = journal["recovery"]["seconds"]
    last_revert = max(i["reverted_at"] for i in journal["injections"])
    if recovery is None:  # the engine measured no recovery: nothing to mark
        assert "recovered" not in found
    else:
        assert found["recovered"][0] == pytest.approx(last_revert + recovery, abs=1e-3)
    # kills have nothing to revert, and no alert was watched: no such marks
    assert "reverted" not in found and "alert fired" not in found
    served = found["served again"][0] - injected
    assert incident_marks(row)["served again"][2] == f"served again +{served:.1f}s"


def test_the_drop_is_drawn_in_the_tick_it_happened_in(run: dict[str, Any]) -> None:
    journal = run["journal"]
    assert journal["fine_series"]["step"] == TICK
    availability = next(c for c in svgs(run["html"]) if c.findtext(f"{SVG}title", "")
                        .startswith("Availability"))
    assert "per 100 ms" in availability.findtext(f"{SVG}title", "")
    path = drawn_series(availability)["traffic"]
    assert path.get("data-step") == "0.1"
    values = [tuple(map(float, p.split(","))) for p in path.get("data-values", "").split(";")]
    drop = next(t for t, v in values if v < 1.0)
    assert drop <= run["first"] + SLACK < drop + TICK + 2 * SLACK
    # drawn over exactly that tick: [drop, drop + 0.1)
    x0, x1, _ = next(s for s in steps(path.get("d", "")) if s[0] >= x_of(availability, drop)
                     - 0.06)
    assert x0 == pytest.approx(x_of(availability, drop), abs=0.06)
    assert x1 == pytest.approx(x_of(availability, drop + TICK), abs=0.06)


def test_the_markdown_summary_says_it_in_one_line(run: dict[str, Any]) -> None:
    (line,) = [ln for ln in run["markdown"].splitlines() if ln.startswith("- timeline: ")]
    assert re.fullmatch(r"- timeline: fault injected \+0\.0s · first error \+\d\.\ds · "
                        r"served again \+\d\.\ds( · recovered \+\d\.\ds)?", line), line
