"""A game day's `reports.formats` are the reporter registry's formats that write a file: a
plugin's format may be listed (and is written), an unknown one is refused at its file:line with
the known ones listed, as before."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from click.testing import CliRunner

from chaos.cli import cli
from chaos.gameday.run import GameDayRun, load_gameday
from chaos.plugin import new_reporter_registry
from chaos.reports.registry import ReporterRegistry
from tests.support.plugins import CountingReporter

EXPERIMENT = """\
title: a worker freezes
faults:
  - type: process.suspend
    target: {process: {name: worker}}
    duration: 1s
"""
GAMEDAY = """\
title: formats
experiments: [freeze.yaml]
reports: {formats: [html, counts]}
"""


def files(tmp_path: Path) -> Path:
    (tmp_path / "freeze.yaml").write_text(EXPERIMENT)
    path = tmp_path / "gameday.yaml"
    path.write_text(GAMEDAY)
    return path


def with_counts() -> ReporterRegistry:
    reporters = new_reporter_registry()
    reporters.add(CountingReporter())
    return reporters


def test_a_plugin_format_may_be_listed(tmp_path: Path) -> None:
    path = files(tmp_path)
    assert load_gameday(str(path), reporters=with_counts()).formats == ("html", "counts")
    result = CliRunner().invoke(cli, ["validate", str(path)], obj={"reporters": with_counts()})
    assert result.exit_code == 0, result.output


def test_an_unknown_format_is_refused_where_it_is_written(tmp_path: Path) -> None:
    path = files(tmp_path)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert (f"{path}:3:27: reports.formats[1]: expected one of html, markdown, junit, "
            "postmortem, got 'counts'") in result.output


def test_the_game_day_writes_the_plugin_format(tmp_path: Path) -> None:
    reporters = with_counts()
    day = load_gameday(str(files(tmp_path)), reporters=reporters)
    # each experiment's `chaos run` is a process that writes no journal: an error journal
    # stands in for it, and the reports are still written
    runner = GameDayRun(day, tmp_path / "out", command=(sys.executable, "-c", "pass"),
                        reporters=reporters)
    asyncio.run(runner.run())
    assert runner.reports == {"html": "report.html", "counts": "counts.txt"}
    assert (runner.dir / "counts.txt").read_text().startswith("1 experiment(s): ")
