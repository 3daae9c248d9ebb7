"""`chaos run` says the warnings `chaos validate` gives (a `match` no request can meet), in the
same `FILE:LINE:COL: warning: ...` form on stderr, before anything runs - and never on stdout,
so `--json` stays one document there."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import free_port, run_chaos

WARNING = "warning: faults[0].with.percent: 0% of the matching requests are hit"


def write(tmp_path: Path) -> Path:
    path = tmp_path / "never.yaml"
    upstream = free_port()
    path.write_text(f"""title: a fault that hits no request
faults:
  - type: http.abort
    target: {{proxy: {{listen: "127.0.0.1:{free_port()}", upstream: "127.0.0.1:{upstream}"}}}}
    with: {{status: 503, percent: 0%}}
    duration: 500ms
services:
  - name: upstream
    run: ["{sys.executable}", -m, chaos.demo.service, --port, "{upstream}"]
    ready: {{http: "http://127.0.0.1:{upstream}/health", timeout: 15s}}
""")
    return path


def test_run_prints_the_warning_at_its_line_before_the_run(tmp_path: Path,
                                                           state_dir: Path) -> None:
    path = write(tmp_path)
    result = run_chaos("run", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}:5:") and WARNING in lines[0], lines
    validated = run_chaos("validate", str(path))
    assert lines[0] in validated.stderr.splitlines()  # word for word what validate says
    assert WARNING not in result.stdout
    dry = run_chaos("run", "--dry-run", str(path))
    assert dry.stderr.splitlines()[0] == lines[0], dry.stderr


def test_run_json_keeps_warnings_off_stdout(tmp_path: Path, state_dir: Path) -> None:
    path = write(tmp_path)
    result = run_chaos("run", "--json", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["schema"] == "chaos.run/v1" and document["exit_code"] == 0
    assert WARNING in result.stderr and WARNING not in result.stdout
