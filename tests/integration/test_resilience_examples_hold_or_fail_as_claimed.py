"""The resilience-pattern examples (experiments/resilience-*.yaml) give the verdict they claim:
each pattern holds with the front's default settings and deviates with it switched off.

Each run is the real CLI: the bundled dependency, an HTTP fault proxy declared as a service and
the bundled front (chaos.demo.front), the built-in traffic generator, the fault through the
running proxy; ports are free ones passed with --var. The journal says which check decided.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, run_chaos

CASES = [
    ("resilience-retries.yaml", {}, 0, None),
    ("resilience-retries.yaml", {"retries": "0"}, 1, "availability >= 99.5%"),
    ("resilience-timeout.yaml", {}, 0, None),
    ("resilience-timeout.yaml", {"timeout": "10"}, 1, "latency.p95 < 500ms"),
    ("resilience-circuit-breaker.yaml", {}, 0, None),
    ("resilience-circuit-breaker.yaml", {"threshold": "0"}, 1, "latency.fraction(<=100ms)"),
]


@pytest.mark.parametrize(("name", "settings", "code", "failing"), CASES,
                         ids=[f"{c[0].removesuffix('.yaml')}-{'held' if c[2] == 0 else 'off'}"
                              for c in CASES])
def test_each_resilience_example_gives_its_verdict(tmp_path: Path, state_dir: Path, name: str,
                                                   settings: dict[str, str], code: int,
                                                   failing: str | None) -> None:
    ports = {key: str(free_port()) for key in ("dependency_port", "proxy_port", "front_port")}
    args = [arg for key, value in {**ports, **settings}.items()
            for arg in ("--var", f"{key}={value}")]
    result = run_chaos("run", "-q", str(ROOT / "experiments" / name), *args, timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == code, out
    (journal_path,) = (tmp_path / "runs").glob("*/journal.json")
    journal = json.loads(journal_path.read_text())
    text = json.dumps(journal)
    assert '"reverted"' in text  # the fault went in and came out
    if failing is not None:
        assert "FAIL" in out and failing in out.split("why:")[1], out
