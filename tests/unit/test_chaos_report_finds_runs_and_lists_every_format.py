"""`chaos report DIR` reads the layout `chaos run` writes (DIR/RUN_ID/journal.json), and
`chaos report --help` describes every registered format, a plugin's too."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from chaos.cli import cli
from chaos.plugin import new_reporter_registry
from chaos.runner.journal import error_journal
from tests.support.plugins import CountingReporter


def test_a_runs_directory_stands_for_the_journals_one_level_down(tmp_path: Path) -> None:
    for run in ("20260101T000000-bbbbbb", "20260101T000000-aaaaaa"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "journal.json").write_text(
            json.dumps(error_journal(f"{run}.yaml", 2, "invalid")), encoding="utf-8")
    (tmp_path / "deeper" / "x").mkdir(parents=True)  # only one level is searched
    (tmp_path / "deeper" / "x" / "journal.json").write_text("{}", encoding="utf-8")
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"2 journals found in {tmp_path}/*/journal.json" in result.stderr
    text = result.stdout
    assert text.index("20260101T000000-aaaaaa.yaml") < text.index("20260101T000000-bbbbbb.yaml")


def test_an_empty_directory_still_says_no_journal(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert f"no journal in {tmp_path}" in str(result.exception)


def test_the_format_help_comes_from_the_registry(tmp_path: Path) -> None:
    registry = new_reporter_registry()
    registry.add(CountingReporter())
    result = CliRunner().invoke(cli, ["report", "--help"], obj={"reporters": registry})
    help_text = " ".join(result.output.split())
    for reporter in registry:
        assert f"{reporter.name}: {reporter.summary.rstrip('.')}" in help_text
    assert "all: every format that writes a file" in help_text
