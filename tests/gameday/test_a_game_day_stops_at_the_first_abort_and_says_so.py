"""stop_on: first_abort, with a guardrail that trips for real, and webhooks that work, fail or
hang: the good one hears start, abort and finish; the bad ones are logged and change nothing.
The report marks the breach where the journal says it happened."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import free_port, processes_matching, run_chaos
from tests.gameday.conftest import NO_PROXY, WebhookServer, write_gameday
from tests.support.svg_charts import svgs

SVG = "{http://www.w3.org/2000/svg}"


def test_abort_stops_the_game_day_and_every_webhook_outcome_is_survived(
        tmp_path: Path, webhooks: WebhookServer) -> None:
    port, closed = free_port(), free_port()
    path = write_gameday(tmp_path, f"""
title: Stops at the first abort
owners: [team-a]
experiments:
  - {{file: "{{fixtures}}/guardrail-abort.yaml", vars: {{port: "{port}"}}}}
  - "{{experiments}}/quickstart.yaml"
stop_on: first_abort
notify:
  - {{webhook: "{webhooks.url('/hook')}", headers: {{Authorization: "Bearer ${{HOOK_TOKEN}}"}}}}
  - {{webhook: "{webhooks.url('/broken')}", events: [finished]}}
  - {{webhook: "http://127.0.0.1:{closed}/nobody", events: [started]}}
  - {{webhook: "{webhooks.url('/slow')}", timeout: 500ms, events: [aborted]}}
""")
    env = {"CHAOS_STATE_DIR": str(tmp_path / "state"), "HOOK_TOKEN": "s3cret", **NO_PROXY}
    result = run_chaos("gameday", "run", str(path), "--out", str(tmp_path / "out"), env=env,
                       timeout=90)
    assert result.returncode == 4, result.stdout + result.stderr
    (directory,) = (tmp_path / "out").iterdir()
    agg = json.loads((directory / "gameday.json").read_text())
    first, second = agg["experiments"]
    assert first["status"] == "done" and first["exit_code"] == 4 and first["verdict"] == "aborted"
    assert second["status"] == "skipped" and "first_abort" in second["skipped"]
    assert agg["stopped"] and "first_abort" in agg["stopped"] and agg["exit_code"] == 4
    assert processes_matching(f"chaos.demo.service --port {port}") == []

    # the good webhook: start, abort, finish, in order, with the header from the environment
    # each webhook is posted from its own thread: aborted and finished may arrive swapped
    events = sorted(webhooks.events("/hook"), key=lambda e: e["sent"])
    assert [e["event"] for e in events] == ["gameday.started", "gameday.aborted",
                                            "gameday.finished"]
    assert "first_abort" in events[1]["reason"]
    assert events[2]["stopped"] == agg["stopped"] and events[2]["exit_code"] == 4
    assert [e["status"] for e in events[2]["experiments"]] == ["done", "skipped"]
    headers = [h for p, h, _ in webhooks.received if p == "/hook"]
    assert all(h.get("Authorization") == "Bearer s3cret" for h in headers)
    # the bad ones were tried, logged, and did not change the outcome
    assert [e["event"] for e in webhooks.events("/broken")] == ["gameday.finished"]
    assert "/broken (finished) failed: HTTP 500" in result.stderr
    assert f"127.0.0.1:{closed}/nobody (started) failed" in result.stderr
    assert "/slow (aborted) failed: no answer in time" in result.stderr
    assert "Traceback" not in result.stderr

    # the report: the breach where the journal has it, the skipped experiment, a post-mortem
    journal = json.loads((directory / first["journal"]).read_text())
    (breach,) = [e for e in journal["events"] if e["event"] == "guardrail.breached"]
    html = (directory / "report.html").read_text()
    charts = svgs(html)  # the charts; the incident timeline row is not one
    assert len(charts) == 2  # the skipped experiment has none
    for chart in charts:
        marks = [g for g in chart.iter(f"{SVG}g") if g.get("class") == "breach"]
        assert [float(g.get("data-t", "")) for g in marks] == [breach["t"]]
        left, _, width, _ = (float(v) for v in chart.get("data-plot", "").split(","))
        line = marks[0].find(f"{SVG}line")
        assert line is not None
        assert float(line.get("x1", "")) == round(
            left + breach["t"] / float(chart.get("data-x-max", "")) * width, 1)
    assert "did not run: the game day stopped early: " in html
    # people read titles and paths they can open, not paths relative to the game-day file
    assert "[2/2]" not in result.stdout  # never started
    assert "The demo service answers again within 5s" in html  # the skipped one's title
    assert f"[1/2] aborted: {journal['experiment']['title']} (exit 4" in result.stdout
    suites = ET.parse(directory / "junit.xml").getroot().findall("testsuite")
    assert suites[-1].find("testcase/skipped") is not None
    (draft,) = directory.glob("postmortem-01-*.md")
    assert "breached" in draft.read_text() and "| team-a |" in draft.read_text()
