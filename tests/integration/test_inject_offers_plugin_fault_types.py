"""`chaos inject` offers the fault types of installed plugins (the `chaos.plugins` entry-point
group), as `chaos faults`, the watchdog and `chaos recover` do; and `chaos --help` still never
looks entry points up. The plugin is a real installed distribution: a dist-info directory with
its entry point on PYTHONPATH, seen by importlib.metadata like any `pip install`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_chaos
from tests.support import fresh_cli
from tests.support.plugins import install_distribution

PLUGIN = "from tests.support.plugins import register_marker as register\n"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_distribution(tmp_path_factory.mktemp("site"), "chaos_marker_plugin", PLUGIN,
                                "[chaos.plugins]\nmarker = chaos_marker_plugin:register\n")


def with_plugin(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


def test_inject_lists_and_describes_a_plugin_fault_type(installed: Path) -> None:
    listed = run_chaos("inject", "--help", env=with_plugin(installed))
    assert listed.returncode == 0, listed.stderr
    assert "marker.place" in listed.stdout
    described = run_chaos("inject", "marker.place", "--help", env=with_plugin(installed))
    assert described.returncode == 0, described.stderr
    assert "--content" in described.stdout and "--for" in described.stdout


def test_inject_dry_run_plans_a_plugin_fault(installed: Path, tmp_path: Path,
                                             state_dir: Path) -> None:
    marker = tmp_path / "MARKER"
    planned = run_chaos("inject", "marker.place", "--marker", str(marker), "--for", "5s",
                        "--dry-run", env=with_plugin(installed))
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "marker.place via plugin.marker" in planned.stdout
    assert not marker.exists()


def test_help_looks_no_entry_point_up(installed: Path) -> None:
    code, modules = fresh_cli.modules_after("--help", path=(str(installed),))
    assert code == 0
    assert "chaos_marker_plugin" not in modules
    assert "importlib.metadata" not in modules
    code, modules = fresh_cli.modules_after("inject", "--help", path=(str(installed),))
    assert code == 0
    assert "chaos_marker_plugin" in modules  # the subcommand that needs the catalogue
