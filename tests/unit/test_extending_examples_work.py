"""The worked examples of docs/extending.md run as written: the CSV report format through
`chaos report`, the flag-file fault through registration, `chaos inject` flags, the loader,
inject and revert; and every test the docs show a plugin author (docs/extending.md,
docs/testing.md) passes as written, importing only chaos.plugin and the plugins."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chaos.cli import cli
from chaos.model.loader import load_text
from chaos.model.source import SourceText
from chaos.plugin import AdapterRegistry, new_fault_registry, new_reporter_registry
from chaos.runner.journal import error_journal
from chaos.runner.load import vocabulary

DOC = Path(__file__).parents[2] / "docs" / "extending.md"
TESTING = DOC.with_name("testing.md")
PLUGINS = ("chaos_csv", "chaos_flagfile", "chaos_diskfree")


def blocks(doc: Path) -> dict[str, str]:
    """The ```python blocks of a doc that start with `# NAME.py`, by NAME."""
    return {module: text for text, module in
            re.findall(r"```python\n(# (\w+)\.py\n.*?)```", doc.read_text(), re.S)}


def example(name: str, monkeypatch: pytest.MonkeyPatch, doc: Path = DOC) -> types.ModuleType:
    """The ```python block of the doc that starts with `# NAME.py`, imported as NAME."""
    code = blocks(doc)[name]
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up
    exec(compile(code, f"{doc}:{name}", "exec"), module.__dict__)
    return module


DOC_TESTS = [(doc, name) for doc in (DOC, TESTING) for name in blocks(doc)
             if name.startswith("test_")]


def test_the_docs_show_tests_for_each_plugin() -> None:
    assert {"test_csv", "test_flagfile", "test_diskfree"} <= {n for _, n in DOC_TESTS}
    for _, name in DOC_TESTS:  # a plugin's tests need nothing but chaos.plugin and pytest
        imports = re.findall(r"^from ([\w.]+) import", (blocks(DOC) | blocks(TESTING))[name],
                             re.M)
        assert set(imports) <= {"chaos.plugin", *PLUGINS}, (name, imports)


@pytest.mark.parametrize(("doc", "name"), DOC_TESTS, ids=[n for _, n in DOC_TESTS])
def test_a_test_the_docs_show_passes_as_written(doc: Path, name: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for plugin in PLUGINS:
        example(plugin, monkeypatch)
    module = example(name, monkeypatch, doc)
    tests = [f for n, f in vars(module).items() if n.startswith("test_") and callable(f)]
    assert tests, f"{name} defines no test"
    for number, test in enumerate(tests):
        wants = list(inspect.signature(test).parameters)
        assert wants in ([], ["tmp_path"]), f"{name}: a fixture the docs do not define: {wants}"
        (tmp_path / str(number)).mkdir()
        test(*[tmp_path / str(number)] * len(wants))


def test_the_csv_report_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps(error_journal("checkout.yaml", 2, "invalid")))
    reporters = new_reporter_registry()
    example("chaos_csv", monkeypatch).register(reporters)
    out = tmp_path / "e.csv"
    result = CliRunner().invoke(cli, ["report", str(journal), "--format", "csv", "-o", str(out)],
                                obj={"reporters": reporters})
    assert result.exit_code == 0, result.output
    assert out.read_text() == "experiment,verdict,exit_code\ncheckout.yaml,error,2\n"


@pytest.fixture
def flagfile(monkeypatch: pytest.MonkeyPatch) -> AdapterRegistry:
    adapters = AdapterRegistry(new_fault_registry())
    example("chaos_flagfile", monkeypatch).register(adapters.faults, adapters)
    return adapters


def test_the_flag_file_fault_has_its_inject_flag(flagfile: AdapterRegistry) -> None:
    result = CliRunner().invoke(cli, ["inject", "file.create", "--help"],
                                obj={"faults": flagfile.faults})
    assert result.exit_code == 0, result.output
    assert "--file TEXT" in result.output and "flag file: the path to create" in result.output
    assert "--content" in result.output  # the parameter, from its schema


def test_the_flag_file_fault_injects_and_reverts(flagfile: AdapterRegistry,
                                                 tmp_path: Path) -> None:
    flag = tmp_path / "MAINTENANCE"
    text = (f"title: flag\nfaults:\n  - type: file.create\n    target: {{path: {{file: {flag}}}}}\n"
            "    with: {content: chaos}\n    duration: 30s\n")
    fault = load_text(SourceText("flag.yaml", text), vocabulary(flagfile.faults), {}).faults[0]
    adapter = flagfile.route("file.create", "path")

    async def inject_then_revert() -> list[str]:
        scope: Any = None  # the example reads nothing from the run's scope
        (target,) = await adapter.resolve(fault, scope)
        spec = await adapter.inject(fault, target, adapter.prepare(fault, target), scope)
        assert flag.read_text() == "chaos"
        return [await flagfile.revert(spec), await flagfile.revert(spec)]

    assert asyncio.run(inject_then_revert()) == ["reverted", "gone"]
    assert not flag.exists()
