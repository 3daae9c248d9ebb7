"""A `match` no request can meet is valid but almost surely a mistake: `chaos validate` says so
as `FILE:LINE:COL: warning: ...`, exits 0, and with --strict refuses the file (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_chaos

FILE = """title: a match that never matches
faults:
  - type: http.abort
    target: {{proxy: {{listen: 127.0.0.1:1, upstream: 127.0.0.1:2}}}}
    with: {with_}
    duration: 10s
"""


def write(tmp_path: Path, with_: str) -> Path:
    path = tmp_path / "match.yaml"
    path.write_text(FILE.format(with_=with_))
    return path


@pytest.mark.parametrize(("with_", "field", "message"), [
    ("{status: 503, path: /a, path_prefix: /b}", "with.path_prefix",
     "no request can match both path /a and path_prefix /b"),
    ("{status: 503, path: /pay, path_regex: '/cart.*'}", "with.path_regex",
     "no request can match both path /pay and path_regex '/cart.*'"),
    ("{status: 503, percent: 0%}", "with.percent", "0% of the matching requests are hit"),
])
def test_a_match_that_never_matches_is_a_warning_at_its_line(tmp_path: Path, with_: str,
                                                             field: str, message: str) -> None:
    path = write(tmp_path, with_)
    result = run_chaos("validate", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{path}: ok (1 fault(s)" in result.stdout
    (line,) = [x for x in result.stderr.splitlines() if "warning:" in x]
    assert line.startswith(f"{path}:5:") and f"warning: faults[0].{field}: {message}" in line
    strict = run_chaos("validate", "--strict", str(path))
    assert strict.returncode == 2, strict.stdout + strict.stderr
    assert "invalid with --strict: 1 warning(s)" in strict.stderr


def test_a_match_that_can_match_gives_no_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "{status: 503, path: /pay, path_prefix: /p, path_regex: '/pa.', "
                           "percent: 1%}")
    result = run_chaos("validate", "--strict", str(path))
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr


def test_strict_json_lists_the_warnings_as_the_files_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "{status: 503, percent: 0%}")
    result = run_chaos("validate", "--json", "--strict", str(path))
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 2 and doc["invalid"] == 1
    (problem,) = doc["files"][0]["problems"]
    assert (problem["line"], problem["path"]) == (5, "faults[0].with.percent")
