"""Resource faults that cannot be held safely are refused before anything is injected: exit 2, a
message naming the file, line and field and what to do, no traceback, no worker, no file, an
empty ledger."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psutil
import pytest

from tests.conftest import run_chaos, status_injections


def refused(tmp_path: Path, body: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(f"title: bad resource fault\nfaults:\n  - {body}\n    duration: 30s\n")
    result = run_chaos("run", str(path), timeout=60)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "Traceback" not in out
    assert "INJECTED" not in out
    status = run_chaos("status", "--json")
    assert status_injections(status) == [], status.stdout
    return out


def test_load_above_100_percent_is_refused_by_validation(tmp_path: Path, state_dir: Path) -> None:
    out = refused(tmp_path, "type: resource.cpu\n    target: {host: local}\n"
                            "    with: {load: 150%}")
    assert "bad.yaml:5:" in out and "faults[0].with.load" in out and "100%" in out


def test_more_cores_than_the_machine_has_is_refused(tmp_path: Path, state_dir: Path) -> None:
    out = refused(tmp_path, "type: resource.cpu\n    target: {host: local}\n"
                            "    with: {cores: 4096}")
    assert "bad.yaml:3:" in out and "faults[0].with.cores" in out and "use at most" in out


def test_memory_beyond_physical_ram_is_refused(tmp_path: Path, state_dir: Path) -> None:
    total = psutil.virtual_memory().total
    out = refused(tmp_path, "type: resource.memory\n    target: {host: local}\n"
                            f"    with: {{amount: {total * 2}, force: true}}")
    assert "bad.yaml:3:" in out and "faults[0].with.amount" in out
    assert "physical RAM" in out and "ask for less" in out


def test_memory_that_would_wake_the_oom_killer_needs_force(tmp_path: Path,
                                                           state_dir: Path) -> None:
    out = refused(tmp_path, "type: resource.memory\n    target: {host: local}\n"
                            "    with: {amount: 99%, of: available}")
    assert "OOM killer" in out and "force: true" in out


def test_wrong_units_are_refused_by_validation(tmp_path: Path, state_dir: Path) -> None:
    out = refused(tmp_path, "type: resource.memory\n    target: {host: local}\n"
                            "    with: {amount: 12 parsecs, ramp: 5}")
    assert "faults[0].with.amount: expected a size like 512MiB or a percentage" in out
    assert "faults[0].with.ramp" in out


def test_missing_path_is_refused(tmp_path: Path, state_dir: Path) -> None:
    out = refused(tmp_path, "type: resource.disk_fill\n    target: {host: local}\n"
                            f"    with: {{path: {tmp_path / 'nowhere'}, reserve: 1MiB}}")
    assert "faults[0].with.path" in out and "does not exist" in out


def test_read_only_path_is_refused(tmp_path: Path, state_dir: Path, small_tmpfs: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True, timeout=10)
    out = refused(tmp_path, "type: resource.disk_fill\n    target: {host: local}\n"
                            f"    with: {{path: {small_tmpfs}, reserve: 1MiB}}")
    assert "read-only" in out and "faults[0].with.path" in out
    assert not list(small_tmpfs.iterdir())


@pytest.mark.parametrize("fill", ["size: 1GiB", "reserve: 1GiB", "size: 1MiB, reserve: 1MiB"])
def test_disk_fill_that_does_not_fit_is_refused(tmp_path: Path, state_dir: Path,
                                                small_tmpfs: Path, fill: str) -> None:
    out = refused(tmp_path, "type: resource.disk_fill\n    target: {host: local}\n"
                            f"    with: {{path: {small_tmpfs}, {fill}}}")
    assert "faults[0].with." in out
    assert not list(small_tmpfs.iterdir())


def test_ad_hoc_inject_refuses_a_bad_flag(state_dir: Path) -> None:
    result = run_chaos("inject", "resource.cpu", "--load", "150%", "--for", "5s")
    assert result.returncode == 2
    assert "--load: expected a percentage between 0% and 100%" in result.stderr
