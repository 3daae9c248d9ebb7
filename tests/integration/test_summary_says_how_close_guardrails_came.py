"""The terminal summary always shows the during phase: each guardrail with the measurement that
came closest to breaching it, or the breach itself as what happened (`guardrail breached:
home < 50% (measured 0%)`, never `... PASS`). A latency check that fails says the latency,
not the last error an answer carried."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from tests.conftest import free_port, run_chaos, unique_marker

SERVICE = """\
services:
  - name: demo
    run: ["${python}", -m, chaos.demo.service, --port, "PORT"EXTRA]
    ready: {http: "http://127.0.0.1:PORT/health", timeout: 20s}
hypothesis:
  probes: [{name: home, http: {url: "http://127.0.0.1:PORT/", timeout: 1s}}]
"""


def _run(tmp_path: Path, name: str, body: str, extra: str = "") -> tuple[int, str, dict[str, Any]]:
    path = tmp_path / f"{name}.yaml"
    text = f"title: {name}\n" + SERVICE + body
    path.write_text(text.replace("PORT", str(free_port())).replace("EXTRA", extra))
    runs = tmp_path / f"runs-{name}"
    result = run_chaos("run", str(path), "--runs-dir", str(runs), timeout=120)
    (journal,) = runs.glob("*/journal.json")
    return result.returncode, result.stdout + result.stderr, json.loads(journal.read_text())


def test_a_breach_reads_as_a_breach_with_what_was_measured(
        tmp_path: Path, state_dir: Path,
        spawn_sleepers: Callable[..., list[psutil.Process]]) -> None:
    """The demo service is killed (nothing restarts it) while a bystander is held frozen for
    20 s: every probe is refused, the guardrail aborts the run."""
    marker = unique_marker()
    spawn_sleepers(1, marker)
    code, out, journal = _run(tmp_path, "breach", f"""\
  before: {{window: 1s, every: 100ms}}
  during: {{every: 100ms, abort: [home < 50%]}}
faults:
  - name: kill-demo
    type: process.kill
    target: {{service: demo}}
    start: 300ms
  - name: freeze-bystander
    type: process.suspend
    target: {{process: {{cmdline: "{marker}"}}}}
    duration: 20s
limits: {{max_duration: 1m, max_targets: 1}}
""")
    assert code == 4, out
    (guardrail,) = journal["phases"]["during"]["guardrails"]
    assert guardrail["breached"] and guardrail["value"] < 0.5, guardrail
    measured = guardrail["measured"]
    assert f"[FAIL] guardrail breached: home < 50% (measured {measured}," in out
    assert f"why: guardrail breached: home < 50% (measured {measured})" in out
    assert "PASS" not in out.split("why:", 1)[1].splitlines()[0]
    assert journal["reason"] == f"guardrail breached: home < 50% (measured {measured})"
    (path,) = (tmp_path / "runs-breach").glob("*/journal.json")
    html = run_chaos("report", str(path), "--format", "html", timeout=60)
    assert html.returncode == 0, html.stderr
    assert ("<td>guardrail home &lt; 50%</td><td><span class=\"badge FAIL\">BREACHED</span></td>"
            f"<td>{measured}</td>") in html.stdout


def test_a_guardrail_that_held_shows_how_close_it_came(
        tmp_path: Path, state_dir: Path,
        spawn_sleepers: Callable[..., list[psutil.Process]]) -> None:
    """Every answer of this demo service takes at least 50 ms, so the slowest one the guardrail
    saw is at least that; the faults (on an unrelated process) never make it 900 ms (a bound under the probe's 1 s timeout,
    as `chaos validate` requires)."""
    marker = unique_marker()
    spawn_sleepers(1, marker)
    code, out, journal = _run(tmp_path, "held", f"""\
  before: {{window: 1s, every: 100ms}}
  during: {{every: 100ms, abort: [home.latency.max > 900ms]}}
faults:
  - name: freeze-bystander
    type: process.suspend
    target: {{process: {{cmdline: "{marker}"}}}}
    duration: 1s
limits: {{max_duration: 1m, max_targets: 1}}
""", extra=", --latency, '0.05'")
    assert code == 0, out
    (guardrail,) = journal["phases"]["during"]["guardrails"]
    assert not guardrail["breached"] and 0.05 <= guardrail["value"] < 0.9, guardrail
    assert re.search(r"\[ok  \] guardrail home\.latency\.max > 900ms +held; closest: measured "
                     + re.escape(guardrail["measured"]) + r" \(\d+ events\)", out), out
    assert re.search(r"\n  during:\n    \[ok  \] guardrail ", out), out


def test_the_during_phase_is_shown_without_checks_or_guardrails(
        tmp_path: Path, state_dir: Path,
        spawn_sleepers: Callable[..., list[psutil.Process]]) -> None:
    marker = unique_marker()
    spawn_sleepers(1, marker)
    code, out, _ = _run(tmp_path, "bare", f"""\
  checks: [home >= 90%]
  before: {{window: 1s, every: 100ms}}
faults:
  - name: freeze-bystander
    type: process.suspend
    target: {{process: {{cmdline: "{marker}"}}}}
    duration: 500ms
""")
    assert code == 0, out
    assert "\n  during:\n    no checks and no guardrails while the faults were held\n" in out


def test_a_slow_answer_fails_a_latency_check_on_its_latency(tmp_path: Path,
                                                           state_dir: Path) -> None:
    """Half the answers are HTTP 500, every answer takes at least 50 ms: the p95 check fails on
    the 50 ms, and says so, not `HTTP 500`."""
    code, out, journal = _run(tmp_path, "slow", """\
  checks: [home.latency.p95 < 10ms]
  before: {window: 1500ms, every: 100ms}
faults:
  - name: kill-nothing-reached
    type: process.kill
    target: {service: demo}
""", extra=", --latency, '0.05', --error-rate, '0.5'")
    assert code == 3, out
    (check,) = journal["phases"]["before"]["checks"]
    assert check["status"] == "FAIL" and check["value"] >= 0.05, check
    expected = f"home.latency.p95 was {check['measured']}, not < 10ms"
    assert check["reason"] == expected
    assert f"({expected})" in out and "HTTP 500" not in out
