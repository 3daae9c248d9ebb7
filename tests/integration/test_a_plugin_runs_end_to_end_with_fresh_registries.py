"""A plugin's fault type, target kind, adapter, probe kind and report format, registered only in
fresh registries, carry a whole `chaos run` and `chaos report`: the CLI hands the registries of
`obj=` to the loader, the engine, the observer and the reporters, and no process-wide registry
learns any of them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from chaos.adapters.registry import default_registry as default_adapters
from chaos.cli import cli
from chaos.plugin import new_probe_kinds, new_reporter_registry
from chaos.reports.registry import default_registry as default_reporters
from chaos.slo.probe_kinds import default_probe_kinds
from tests.support.plugins import CountingReporter, MarkerProbe, marker_adapters

EXPERIMENT = """\
title: the marker holds and goes
hypothesis:
  probes:
    - name: marker
      marker_seen: {{file: {marker}}}
  checks:
    - marker >= 99%
  before: {{window: 1s, every: 200ms}}
  during: {{every: 200ms}}
  after: {{settle: 0s, window: 1s, every: 200ms}}
faults:
  - type: marker.place
    target: {{marker: {{file: {marker}}}}}
    with: {{content: hello}}
    duration: 1s
"""


def test_a_run_and_its_report_use_only_the_registries_given(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    experiment = tmp_path / "marker.yaml"
    experiment.write_text(EXPERIMENT.format(marker=marker))
    adapters, adapter = marker_adapters()
    probe = MarkerProbe()
    probes = new_probe_kinds()
    probes.add(probe.kind())
    reporters = new_reporter_registry()
    reporters.add(CountingReporter())
    obj = {"faults": adapters.faults, "adapters": adapters, "probes": probes,
           "reporters": reporters}
    journal = tmp_path / "journal.json"

    ran = CliRunner().invoke(cli, ["run", str(experiment), "--journal", str(journal), "-q",
                                   "--runs-dir", str(tmp_path / "runs"),
                                   "--state-dir", str(tmp_path / "state")], obj=obj)
    assert ran.exit_code == 0, ran.output
    document = json.loads(journal.read_text())
    assert document["verdict"] == "held"
    assert adapter.injected == adapter.reverted == [str(marker)]
    assert not marker.exists()
    assert "absent" in probe.answers and "present" in probe.answers  # before and during

    out = tmp_path / "counts.txt"
    reported = CliRunner().invoke(cli, ["report", str(journal), "--format", "counts",
                                        "-o", str(out)], obj=obj)
    assert reported.exit_code == 0, reported.output
    assert out.read_text() == "1 experiment(s): the marker holds and goes\n"

    # nothing leaked into the process-wide registries
    assert default_adapters().faults.get("marker.place") is None
    assert "marker_seen" not in default_probe_kinds()
    assert default_reporters().get("counts") is None


def test_chaos_toolkit_activities_use_the_registries_their_run_lends(
        tmp_path: Path, state_dir: Path) -> None:
    from chaos.ctk import actions
    from chaos.ctk.keeper import KEEPER

    marker = tmp_path / "MARKER"
    adapters, adapter = marker_adapters()
    with KEEPER.using(adapters, None):
        held = actions.inject("marker.place", {"marker": {"file": str(marker)}},
                              {"content": "hello"}, duration="30s")
        assert marker.read_text() == "hello"
        actions.revert(held["run"])
    assert adapter.injected == adapter.reverted == [str(marker)]
    assert not marker.exists()
    assert KEEPER.adapters is None  # lent for the run only
