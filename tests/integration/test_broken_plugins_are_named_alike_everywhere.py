"""A plugin that fails to register is named the same way by every command: prefixed like every
chaos warning, with its distribution (what to upgrade or uninstall) and its entry point. The
plugin is a real installed distribution (a dist-info directory on PYTHONPATH)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from chaos.runner.journal import error_journal
from tests.conftest import ROOT, run_chaos
from tests.support.plugins import install_distribution

PLUGIN = """\
def register(*registries):
    raise RuntimeError("this plugin needs chaos 9")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_distribution(
        tmp_path_factory.mktemp("site"), "chaos_broken_plugin", PLUGIN,
        "[chaos.plugins]\nbroken = chaos_broken_plugin:register\n"
        "[chaos.reporters]\nbroken = chaos_broken_plugin:register\n")


def warning(group: str) -> str:
    return (f"chaos: WARNING: plugin broken from distribution chaos-broken-plugin 1.0 (entry "
            f"point broken = chaos_broken_plugin:register in group {group}) failed to "
            f"register: this plugin needs chaos 9")


def test_validate_and_report_name_a_broken_plugin_alike(site: Path, tmp_path: Path) -> None:
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    path = tmp_path / "queue.yaml"  # a fault type no built-in declares: plugins are looked up
    path.write_text("title: t\nfaults:\n  - type: queue.flood\n    target: {process: {pid: 1}}\n"
                    "    duration: 1s\n")
    validated = run_chaos("validate", str(path), env=env)
    assert warning("chaos.plugins") in validated.stderr.splitlines(), validated.stderr
    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps(error_journal("queue.yaml", 2, "invalid")))
    reported = run_chaos("report", str(journal), env=env)
    assert reported.returncode == 0, reported.stderr
    assert warning("chaos.reporters") in reported.stderr.splitlines(), reported.stderr
