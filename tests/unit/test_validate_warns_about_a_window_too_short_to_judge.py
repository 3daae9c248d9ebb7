"""A phase window that cannot hold the probe samples a verdict needs can only be NO_DATA:
`chaos validate` warns at the window's line with the numbers and what to write instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from chaos.cli import cli

FILE = """title: a short window
hypothesis:
  probes: [{{name: up, tcp: {{address: "127.0.0.1:1"}}}}]
{phases}
faults:
  - type: process.suspend
    target: {{process: {{pid: 99999}}}}
    duration: 1s
"""


def warnings_for(tmp_path: Path, phases: str) -> list[str]:
    path = tmp_path / "short.yaml"
    path.write_text(FILE.format(phases=phases))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    return [line.removeprefix(f"{path}:") for line in result.stderr.splitlines()
            if "warning:" in line]


@pytest.mark.parametrize(("phases", "warning"), [
    ("  after: {window: 1s}",
     "4:19: warning: hypothesis.after.window: a 1s window sampled every 500ms holds 2 probe "
     "samples, fewer than the 3 a verdict needs (it would be NO_DATA); write `window: 1.5s` "
     "or more, or `every: 333ms` or less"),
    ("  before: {every: 2s}",
     "4:19: warning: hypothesis.before.window: a 3s window sampled every 2s holds 1 probe "
     "sample, fewer than the 3 a verdict needs (it would be NO_DATA); write `window: 6s` or "
     "more, or `every: 1s` or less"),
    ("  min_events: 5\n  during: {window: 2s, abort: [up < 50%]}",
     "5:20: warning: hypothesis.during.window: a 2s window sampled every 500ms holds 4 probe "
     "samples, fewer than the 5 a verdict needs (it would be NO_DATA); write `window: 2.5s` "
     "or more, or `every: 400ms` or less"),
])
def test_a_window_too_short_is_a_warning_at_its_line(tmp_path: Path, phases: str,
                                                     warning: str) -> None:
    assert warnings_for(tmp_path, phases) == [warning]


@pytest.mark.parametrize("phases", ["  after: {window: 1.5s}", "  during: {window: 1s}",
                                    "  before: {window: 2s, every: 666ms}"])
def test_a_window_that_holds_enough_samples_is_quiet(tmp_path: Path, phases: str) -> None:
    assert warnings_for(tmp_path, phases) == []
