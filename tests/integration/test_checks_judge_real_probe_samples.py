"""The check grammar, judged by the real runner over samples of real probes.

Each experiment here has a hypothesis and no faults, so `chaos run` samples the probes for the
`before` window, judges every check and stops: exit 0 when all pass, 3 when any does not. The
journal records each check's status, measured value and event count.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import WebServer, free_port, journals, run_chaos


def run_checks(tmp_path: Path, port: int, probes: str, checks: list[str],
               window: str = "1s") -> tuple[int, dict[str, dict[str, Any]], str]:
    """Run a fault-free experiment; (exit code, check text -> verdict, output)."""
    check_lines = "\n".join(f"    - {json.dumps(c)}" for c in checks)
    path = tmp_path / "checks.yaml"
    path.write_text(f"""title: checks over real samples
hypothesis:
  probes:
{probes.format(port=port, dead=free_port())}
  checks:
{check_lines}
  before: {{window: {window}, every: 100ms}}
""")
    result = run_chaos("run", str(path), timeout=60)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    (journal,) = journals(tmp_path / "runs")
    verdicts = {c["check"]: c for c in journal["phases"]["before"]["checks"]}
    assert journal["exit_code"] == result.returncode
    return result.returncode, verdicts, output


PROBES = """\
    - name: home
      http: {{url: "http://127.0.0.1:{port}/", timeout: 2s}}
    - name: slow
      http: {{url: "http://127.0.0.1:{port}/slow?ms=150", timeout: 2s}}
    - name: flaky
      http: {{url: "http://127.0.0.1:{port}/flaky", timeout: 2s}}
    - name: dead
      tcp: {{address: "127.0.0.1:{dead}", timeout: 500ms}}
    - name: sluggish
      http: {{url: "http://127.0.0.1:{port}/slow?ms=450", timeout: 5s}}"""


def test_ratio_latency_all_and_no_data_verdicts(tmp_path: Path, state_dir: Path,
                                                 web_server: WebServer) -> None:
    expected = {
        "home >= 99%": "PASS",
        "home.latency.p95 < 1s": "PASS",
        "slow.latency.p50 >= 150ms": "PASS",  # the server sleeps 150 ms before answering
        "slow.latency.max >= 150ms": "PASS",
        "slow.latency.p99 < 100ms": "FAIL",
        "flaky >= 99%": "FAIL",  # every other answer is a 500
        "flaky >= 30%": "PASS",
        "flaky <= 70%": "PASS",
        "dead < 1%": "PASS",  # nothing listens: it fails every time
        "all >= 99%": "FAIL",
        "sluggish >= 0%": "PASS",  # 450 ms per answer, still sampled every 100 ms (open loop)
    }
    code, verdicts, output = run_checks(tmp_path, web_server.port, PROBES, list(expected))
    assert {text: v["status"] for text, v in verdicts.items()} == expected, output
    assert code == 3, output
    assert "STEADY STATE NOT MET" in output

    assert verdicts["home >= 99%"]["events"] >= 5
    assert verdicts["home >= 99%"]["measured"] == "100%"
    assert 0.3 <= verdicts["flaky >= 30%"]["value"] <= 0.7
    assert verdicts["slow.latency.p50 >= 150ms"]["value"] >= 0.15
    assert verdicts["all >= 99%"]["value"] == 0.0  # the weakest probe (dead) counts
    assert verdicts["sluggish >= 0%"]["events"] >= 9  # a closed loop would have taken 3


def test_a_hypothesis_whose_checks_all_pass_exits_0(tmp_path: Path, state_dir: Path,
                                                    web_server: WebServer) -> None:
    probes = """\
    - name: home
      http: {{url: "http://127.0.0.1:{port}/", timeout: 2s, expect_body: hello}}
    - name: listening
      tcp: {{address: "127.0.0.1:{port}"}}"""
    code, verdicts, output = run_checks(
        tmp_path, web_server.port, probes,
        ["all >= 99%", "home.latency.p99 < 1500ms", "listening == 100%"])
    assert code == 0, output
    assert {v["status"] for v in verdicts.values()} == {"PASS"}


def test_too_few_samples_is_no_data_never_a_pass(tmp_path: Path, state_dir: Path,
                                                 web_server: WebServer) -> None:
    probes = """\
    - name: sluggish
      http: {{url: "http://127.0.0.1:{port}/slow?ms=450", timeout: 5s}}"""
    # sampled every 100 ms: a 150 ms window holds 2 samples
    code, verdicts, output = run_checks(tmp_path, web_server.port, probes, ["sluggish >= 0%"],
                                        window="150ms")
    no_data = verdicts["sluggish >= 0%"]
    assert no_data["status"] == "NO_DATA" and no_data["value"] is None
    assert no_data["events"] < 3 and "need 3" in no_data["reason"]
    assert code == 3, output


def test_a_latency_check_over_a_probe_that_never_answered_fails_cleanly(
    tmp_path: Path, state_dir: Path, web_server: WebServer
) -> None:
    probes = """\
    - name: dead
      tcp: {{address: "127.0.0.1:{dead}", timeout: 500ms}}"""
    code, verdicts, output = run_checks(tmp_path, web_server.port, probes,
                                        ["dead.latency.p95 < 400ms"])
    assert verdicts["dead.latency.p95 < 400ms"]["status"] in ("FAIL", "NO_DATA")
    assert code == 3, output


def test_samples_slower_than_the_window_are_waited_for_and_judged(
        tmp_path: Path, state_dir: Path, web_server: WebServer) -> None:
    """Open loop: `stuck` is sent every 100 ms although each answer takes 3 s, and the window
    waits for the answers of what it sent (at most the timeout) instead of judging only the
    quick ones."""
    probes = """\
    - name: home
      http: {{url: "http://127.0.0.1:{port}/", timeout: 2s}}
    - name: stuck
      http: {{url: "http://127.0.0.1:{port}/slow?ms=3000", timeout: 5s}}"""
    code, verdicts, output = run_checks(tmp_path, web_server.port, probes,
                                        ["all >= 99%", "stuck.latency.p50 >= 3s"])
    assert verdicts["all >= 99%"]["status"] == "PASS", output
    assert verdicts["stuck.latency.p50 >= 3s"]["events"] >= 9, output
    assert code == 0, output


def test_all_reports_the_weakest_probe(tmp_path: Path, state_dir: Path,
                                       web_server: WebServer) -> None:
    probes = """\
    - name: a-home
      http: {{url: "http://127.0.0.1:{port}/", timeout: 2s}}
    - name: b-flaky
      http: {{url: "http://127.0.0.1:{port}/flaky", timeout: 2s}}"""
    _, verdicts, _ = run_checks(tmp_path, web_server.port, probes, ["all >= 20%"])
    assert verdicts["all >= 20%"]["status"] == "PASS"
    assert verdicts["all >= 20%"]["value"] < 0.8, "reported a-home's 100%, not b-flaky's ~50%"


def test_a_latency_percentile_on_timed_out_samples_fails(tmp_path: Path, state_dir: Path,
                                                         web_server: WebServer) -> None:
    """Every other answer takes 1.5 s against a 500 ms timeout: a timed-out sample's latency is
    unknown and above 500 ms, so a percentile falling on one fails whatever the bound, and the
    answered half alone does not make the tail look fast."""
    probes = """\
    - name: half
      http: {{url: "http://127.0.0.1:{port}/sometimes-slow?ms=1500", timeout: 500ms}}"""
    code, verdicts, output = run_checks(tmp_path, web_server.port, probes,
                                        ["half.latency.p95 < 400ms", "half.latency.p25 < 400ms"])
    tail, body = verdicts["half.latency.p95 < 400ms"], verdicts["half.latency.p25 < 400ms"]
    assert tail["status"] == "FAIL" and tail["measured"] == "> 500ms", output
    assert "no answer within 0.5s" in tail["reason"]
    assert body["status"] == "PASS" and body["value"] < 0.4, output
    assert code == 3, output
