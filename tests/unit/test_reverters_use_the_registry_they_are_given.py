"""The watchdog and `chaos recover`/`chaos stop` revert through the adapter registry they are
given (a fresh one in tests, the process-wide default otherwise), and adapters reach that
registry from their own package or through the `chaos.plugins` entry points."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaos.adapters import container, kubernetes, local
from chaos.cli import cli
from chaos.plugin import AdapterRegistry, new_adapter_registry, new_fault_registry
from chaos.safety.ledger import Ledger
from chaos.safety.watchdog import Watchdog
from tests.support.plugins import FakeEntryPoint, RecordingRevertAdapter

RUN = "r-plugin"


def left_open(state_dir: Path) -> Ledger:
    """A run whose runner is gone (its create time does not match) with one open injection
    that only the plugin's adapter can revert."""
    ledger = Ledger(state_dir)
    ledger.start_run(RUN, pid=os.getpid(), pid_create_time=0.0, title="left behind")
    ledger.intent(RUN, "i-1", fault="process.suspend", target="pid 1 (nothing)",
                  revert={"adapter": RecordingRevertAdapter.name, "pid": 1}, deadline=None)
    ledger.applied(RUN, "i-1")
    return ledger


def with_recorder() -> tuple[AdapterRegistry, RecordingRevertAdapter]:
    registry = new_adapter_registry()
    recorder = RecordingRevertAdapter()
    registry.add(recorder)
    return registry, recorder


@pytest.mark.parametrize("argv", [["recover"], ["stop", "--all"]])
def test_chaos_recover_and_stop_revert_through_the_given_registry(
        tmp_path: Path, argv: list[str]) -> None:
    ledger = left_open(tmp_path)
    registry, recorder = with_recorder()
    result = CliRunner().invoke(cli, [*argv, "--state-dir", str(tmp_path)],
                                obj={"adapters": registry})
    assert result.exit_code == 0, result.output
    assert recorder.reverted == [{"adapter": "plugin.recording", "pid": 1}]
    assert ledger.open_entries(RUN) == []


def test_the_watchdog_reverts_through_the_given_registry(tmp_path: Path) -> None:
    left_open(tmp_path)
    registry, recorder = with_recorder()
    read_fd, write_fd = os.pipe()
    try:
        watchdog = Watchdog(tmp_path, RUN, read_fd, 15.0, adapters=registry)
        assert watchdog.revert("runner died")
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert recorder.reverted == [{"adapter": "plugin.recording", "pid": 1}]
    assert watchdog.ledger.open_entries(RUN) == []


def test_each_adapter_package_registers_its_own_adapters() -> None:
    composed = {a.name for a in new_adapter_registry()}
    parts = []
    for package in (local, kubernetes, container):
        registry = AdapterRegistry(new_fault_registry())
        package.register(registry)
        parts.append({a.name for a in registry})
    assert all(parts) and set().union(*parts) == composed
    assert sum(map(len, parts)) == len(composed)  # no package registers another's adapter


def test_an_entry_point_registers_an_adapter_and_a_broken_one_is_named(
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(faults: object, adapters: AdapterRegistry) -> None:
        adapters.add(RecordingRevertAdapter())
        raise RuntimeError("half registered")

    good = FakeEntryPoint("recording", lambda faults, adapters: adapters.add(
        RecordingRevertAdapter()))
    with caplog.at_level(logging.WARNING):
        registry = new_adapter_registry(plugins=True, entries=[good, FakeEntryPoint("bad",
                                                                                    broken)])
    assert "plugin.recording" in {a.name for a in registry}
    assert "plugin bad from distribution" in caplog.text


def test_building_the_registry_imports_no_cluster_or_container_client() -> None:
    code = ("import sys; from chaos.adapters.registry import new_registry; new_registry(); "
            "print(sorted({'kubernetes', 'docker'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "[]"
