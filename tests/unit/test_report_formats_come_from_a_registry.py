"""Report formats are reporters in a registry: a third party's format, registered in a fresh
registry or through the `chaos.reporters` entry points, is written by `chaos report` like the
built-ins; a broken one is refused when it registers."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chaos.cli import cli
from chaos.plugin import (
    REPORTER_PLUGIN_GROUP,
    Collection,
    Placement,
    ReporterRegistry,
    new_reporter_registry,
)
from chaos.runner.journal import error_journal
from tests.support.plugins import CountingReporter, FakeEntryPoint


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(error_journal("checkout.yaml", 2, "invalid")), encoding="utf-8")
    return path


def report(registry: ReporterRegistry, *argv: str) -> Any:
    return CliRunner().invoke(cli, ["report", *argv], obj={"reporters": registry})


def test_a_registered_format_is_written_by_chaos_report(journal: Path, tmp_path: Path) -> None:
    registry = new_reporter_registry()
    registry.add(CountingReporter())
    out = tmp_path / "out" / "n.txt"
    result = report(registry, str(journal), "--format", "counts", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text() == "1 experiment(s): checkout.yaml\n"


def test_format_all_writes_its_file_beside_the_built_ins(journal: Path, tmp_path: Path) -> None:
    registry = new_reporter_registry()
    registry.add(CountingReporter())
    result = report(registry, str(journal), "--format", "all", "-o", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "counts.txt", "junit.xml", "report.html", "report.md"]
    assert result.output.splitlines()[-1].endswith("counts.txt")


def test_an_unregistered_format_is_a_usage_error(journal: Path) -> None:
    result = report(new_reporter_registry(), str(journal), "--format", "counts")
    assert result.exit_code == 2
    assert "'counts' is not one of" in result.output


def test_help_lists_the_registered_formats() -> None:
    registry = new_reporter_registry()
    registry.add(CountingReporter())
    result = report(registry, "--help")
    assert "[text|json|html|markdown|junit|postmortem|counts|all]" in result.output


def test_an_entry_point_registers_its_format(journal: Path, tmp_path: Path) -> None:
    ep = FakeEntryPoint("counts", lambda registry: registry.add(CountingReporter()))
    registry = new_reporter_registry(plugins=True, entries=[ep])
    assert ep.loaded == ["counts"] and registry.get("counts") is not None
    out = tmp_path / "n.txt"
    assert report(registry, str(journal), "--format", "counts", "-o", str(out)).exit_code == 0
    assert out.read_text().startswith("1 experiment(s)")
    assert REPORTER_PLUGIN_GROUP == "chaos.reporters"


def test_a_broken_entry_point_is_named_and_the_built_ins_stay(
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(registry: ReporterRegistry) -> None:
        raise RuntimeError("no such template")

    with caplog.at_level(logging.WARNING):
        registry = new_reporter_registry(plugins=True, entries=[FakeEntryPoint("bad", broken)])
    assert "plugin bad from distribution" in caplog.text
    assert "failed to register: no such template" in caplog.text
    assert registry.names() == ["text", "json", "html", "markdown", "junit", "postmortem"]


class AsyncRender(CountingReporter):
    async def render(  # type: ignore[override]
            self, collection: Collection, place: Placement) -> str:
        return ""


class OneArgument(CountingReporter):
    def render(self, collection: Collection) -> str:  # type: ignore[override]
        return ""


@pytest.mark.parametrize(("reporter", "message"), [
    (CountingReporter(name="all"), "must be a lowercase word other than all"),
    (CountingReporter(name="Counts"), "must be a lowercase word"),
    (CountingReporter(name="markdown"), "'markdown' is already registered"),
    (CountingReporter(filename="../counts.txt"), "filename must be a plain file name"),
    (CountingReporter(summary=""), "needs a one-line summary"),
    (AsyncRender(), "render must be a plain (not async) method"),
    (OneArgument(), "render must take (collection, place)"),
])
def test_a_broken_reporter_is_refused_when_it_registers(reporter: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError)) as caught:
        new_reporter_registry().add(reporter)
    assert message in str(caught.value)
