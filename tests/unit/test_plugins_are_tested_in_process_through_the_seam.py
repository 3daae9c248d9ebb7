"""A plugin's tests need only chaos.plugin: `run_in_process` runs an experiment through the real
engine on a manual clock (exit code, verdicts, injections, journal), a RecordingAdapter serves a
plugin's own fault type, and `render_report` renders the journal through a plugin's format."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaos.plugin import (
    Field,
    FaultType,
    ManualClock,
    Obj,
    ProbeKind,
    RecordingAdapter,
    Str,
    new_fault_registry,
    new_probe_kinds,
    new_reporter_registry,
    registry_with,
    render_report,
    run_in_process,
)
from tests.support.plugins import CountingReporter

FLAG = """\
title: a plugin's fault
faults:
  - name: flag
    type: file.create
    target: {path: {file: /srv/MAINTENANCE}}
    start: 10s
    duration: 5m
"""


def plugin_faults() -> Any:
    faults = new_fault_registry()
    faults.add_target_kind("path", Obj({"file": Field(Str("the path"), required=True)},
                                       "a file path"))
    faults.add(FaultType("file.create", "create a file for the duration",
                         Obj({"content": Str("what the file holds", "")}), ("path",)))
    return faults


def test_a_recording_adapter_serves_a_plugins_fault_type(tmp_path: Path) -> None:
    clock = ManualClock()
    adapter = RecordingAdapter(clock, fault_types=("file.create",), target_kind="path",
                               name="test.flag", targets={"flag": 2})
    assert registry_with(adapter, faults=plugin_faults()).route("file.create", "path") is adapter
    started = time.monotonic()
    run = run_in_process(FLAG, adapters=[adapter], faults=plugin_faults(), clock=clock,
                         out_dir=tmp_path)
    assert time.monotonic() - started < 5  # five minutes of experiment, on the manual clock
    assert (run.exit_code, run.verdict) == (0, "held")
    assert [(c.action, c.target, c.at) for c in adapter.calls] == [
        ("inject", "flag/0", 1010.0), ("inject", "flag/1", 1010.0),
        ("revert", "flag/1", 1310.0), ("revert", "flag/0", 1310.0)]
    assert [i.outcome for i in run.injections] == ["reverted", "reverted"]
    assert run.journal_path == tmp_path / "journal.json" and run.journal_path.is_file()
    assert [e["fault"] for e in run.events("fault.injected")] == ["flag", "flag"]


def test_the_default_recorder_still_serves_process_faults() -> None:
    assert RecordingAdapter.fault_types == ("process.kill", "process.suspend")
    assert RecordingAdapter(target_kind="service").fault_types == RecordingAdapter.fault_types


async def never_ok(spec: Mapping[str, Any]) -> tuple[bool, str]:
    return False, "queue is 500 deep"


def test_a_failing_probe_kind_is_steady_state_not_met_with_its_verdicts() -> None:
    kinds = new_probe_kinds()
    kinds.add(ProbeKind("queue_depth", Obj({"queue": Str("the queue's name")}, "a queue"),
                        never_ok, default_timeout=1.0))
    text = ("title: backlog\nhypothesis:\n  probes:\n    - name: backlog\n"
            "      queue_depth: {queue: orders}\n  checks: [backlog >= 99%]\n"
            "faults:\n  - type: process.suspend\n    target: {process: {name: x}}\n"
            "    duration: 5s\n")
    adapter = RecordingAdapter()
    run = run_in_process(text, adapters=[adapter], probes=kinds)
    assert (run.exit_code, run.verdict) == (3, "steady-state-not-met")
    assert run.verdicts["before"] == {"backlog >= 99%": "FAIL"}
    assert adapter.calls == []  # nothing injected
    (check,) = run.checks("before")
    assert check.events and check.events >= 3 and check.value == 0.0


def test_a_plugins_report_format_renders_the_runs_journal(tmp_path: Path) -> None:
    run = run_in_process(FLAG, adapters=[RecordingAdapter(fault_types=("file.create",),
                                                          target_kind="path")],
                         faults=plugin_faults(), out_dir=tmp_path)
    reporters = new_reporter_registry()
    reporters.add(CountingReporter())
    assert render_report("counts", run.journal_path, reporters=reporters) == (
        "1 experiment(s): a plugin's fault\n")
    assert "a plugin's fault" in str(render_report("markdown", run.journal_path))
