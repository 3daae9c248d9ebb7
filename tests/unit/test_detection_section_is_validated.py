"""`detection:` is checked like the rest of the file: every problem at its line and field path
(a bad regex, two sources, an expectation without faults, a missing CA file), and a valid section
becomes a frozen model with durations in seconds and matchers split into (label, op, value)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chaos.errors import ExperimentInvalid
from chaos.model.experiment import Experiment
from chaos.model.loader import load_text
from chaos.model.source import SourceText
from chaos.runner.load import vocabulary
from chaos.slo.alerts import matches
from tests.conftest import run_chaos

VOCAB = vocabulary()
FAULT = """faults:
  - type: process.suspend
    target: {process: {name: nothing}}
    duration: 1s
"""


def load(text: str) -> Experiment:
    return load_text(SourceText("x.yaml", text), VOCAB, {})


def problems(text: str) -> list[str]:
    with pytest.raises(ExperimentInvalid) as caught:
        load(text)
    return [str(p) for p in caught.value.problems]


def test_a_valid_section_becomes_the_model() -> None:
    exp = load(f"""title: t
{FAULT}detection:
  alertmanager: {{url: "http://127.0.0.1:9093", timeout: 2s}}
  every: 500ms
  expect:
    - alert: {{alertname: Down, service: "=~check.*", env: "!=dev", zone: "!~eu-.*"}}
      within: 2m
      resolves_within: 10m
  forbid:
    - alert: {{severity: critical}}
""")
    detection = exp.detection
    assert detection is not None and detection.source == "alertmanager"
    assert detection.every == 0.5 and detection.endpoint["timeout"] == 2.0
    expect, forbid = detection.rules
    assert expect.matchers == (("alertname", "=", "Down"), ("service", "=~", "check.*"),
                               ("env", "!=", "dev"), ("zone", "!~", "eu-.*"))
    assert (expect.expected, expect.within, expect.resolves_within) == (True, 120.0, 600.0)
    assert not forbid.expected and forbid.within is None
    assert matches(expect.matchers, {"alertname": "Down", "service": "checkout", "zone": "us"})
    assert not matches(expect.matchers, {"alertname": "Down", "service": "xcheckout"})
    assert not matches(expect.matchers, {"alertname": "Down", "service": "checkout",
                                         "env": "dev"})
    assert not matches(expect.matchers, {"alertname": "Down", "service": "check",
                                         "zone": "eu-west"})


def test_schema_problems_are_located_at_their_fields() -> None:
    found = problems(f"""title: t
{FAULT}detection:
  alertmanager: {{url: "http://127.0.0.1:9093"}}
  expect:
    - alert: {{alertname: X, service: "=~(bad"}}
      within: 2m
    - alert: {{alertname: Y}}
  forbid:
    - alert: {{severity: critical}}
      within: 3s
""")
    assert any(re.match(r"x\.yaml:9:38: detection\.expect\[0\]\.alert\.service: '\(bad' is "
                        r"not a regular expression", p) for p in found), found
    assert any(p.startswith("x.yaml:11:7: detection.expect[1].within: required field") for p
               in found), found
    assert any(p.startswith("x.yaml:14:7: detection.forbid[0].within: unknown field") for p
               in found), found


def test_rules_across_fields_are_located(tmp_path: Path) -> None:
    both = problems(f"""title: t
{FAULT}detection:
  alertmanager: {{url: "http://127.0.0.1:9093"}}
  prometheus: {{url: "http://127.0.0.1:9090"}}
  forbid: [{{alert: {{severity: critical}}}}]
""")
    assert both == ["x.yaml:7:3: detection: name one place to read alerts from: "
                    "`alertmanager: {url: ...}` or `prometheus: {url: ...}` (not both)"]
    found = problems("""title: t
hypothesis:
  probes: [{http: {url: "http://127.0.0.1:1/"}}]
detection:
  prometheus: {url: "http://127.0.0.1:9090", ca_file: missing.pem}
  expect:
    - alert: {}
      within: 1s
""")
    assert any(p.startswith("x.yaml:5:55: detection.prometheus.ca_file: no file") for p in found)
    assert any(p.startswith("x.yaml:7:5: detection.expect: expected alerts are timed from the "
                            "first injection: add faults") for p in found), found
    assert any(p.startswith("x.yaml:7:7: detection.expect[0].alert: name at least one label")
               for p in found), found


def test_chaos_validate_exits_2_with_locations_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"""title: t
{FAULT}detection:
  alertmanager: {{url: "http://127.0.0.1:9093"}}
  expect: [{{alert: {{alertname: "=~("}}, within: 1m}}]
""")
    result = run_chaos("validate", str(path), timeout=60)
    assert result.returncode == 2
    assert f"{path}:8:" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_url_left_with_a_variable_or_unusable_is_refused_at_its_line() -> None:
    # a variable's value is not substituted itself: ${host} stays in the URL
    held = problems(f"""title: t
vars:
  host: 127.0.0.1
  alerts: "http://${{host}}:9093"
{FAULT}detection:
  alertmanager: {{url: "${{alerts}}"}}
  forbid: [{{alert: {{severity: critical}}}}]
""")
    assert held == ["x.yaml:10:23: detection.alertmanager.url: the URL still holds ${host} after "
                    "substitution: a variable's value is not substituted itself (no ${a} inside "
                    "${b}); give the whole URL with --var, or write it out"], held
    bad = problems(f"""title: t
{FAULT}detection:
  prometheus: {{url: "http://user:secret@[alerts]:9090"}}
  forbid: [{{alert: {{severity: critical}}}}]
""")
    assert len(bad) == 1 and bad[0].startswith(
        "x.yaml:7:21: detection.prometheus.url: not a usable URL:"), bad
    assert "secret" not in bad[0]


def test_chaos_run_refuses_a_url_left_with_a_variable_before_anything_starts(
        tmp_path: Path) -> None:
    path = tmp_path / "held.yaml"
    path.write_text(f"""title: t
vars:
  port: "9093"
  alerts: "http://user:pw@[127.0.0.1]:${{port}}"
{FAULT}detection:
  alertmanager: {{url: "${{alerts}}"}}
  forbid: [{{alert: {{severity: critical}}}}]
""")
    result = run_chaos("run", str(path), timeout=60,
                       env={"CHAOS_STATE_DIR": str(tmp_path / "state"),
                            "CHAOS_RUNS_DIR": str(tmp_path / "runs")})
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert f"{path}:10:23: detection.alertmanager.url: the URL still holds ${{port}}" in out, out
    assert "internal error" not in out and "Traceback" not in out
    assert not (tmp_path / "runs").exists()  # refused before the run began
