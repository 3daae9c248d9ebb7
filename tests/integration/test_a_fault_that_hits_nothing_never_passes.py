"""A fault whose selector matches nothing is refused when it starts, with the selector in the
message, exit 2 and a journal that says nothing was injected — for every local adapter kind, and
for an adapter (a plugin's) that resolves to an empty list without complaining. A run whose
faults injected nothing never ends "hypothesis held".
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WebServer, run_chaos, unique_marker


def run(path: Path, tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    journal = tmp_path / "journal.json"
    result = run_chaos("run", str(path), "--journal", str(journal), timeout=120)
    doc = json.loads(journal.read_text()) if journal.exists() else {}
    return result.returncode, doc, result.stdout + result.stderr


def assert_refused(code: int, journal: dict[str, Any], out: str, *needles: str) -> None:
    assert code == 2, out
    assert "Traceback" not in out
    for needle in needles:
        assert needle in out, out
        assert needle in journal["reason"], journal["reason"]
    assert journal["verdict"] == "error" and journal["exit_code"] == 2
    assert journal["injections"] == []
    assert not [e for e in journal["events"] if e["event"] == "fault.injected"]


LOCAL_CASES = {
    "process": ("process.suspend", "{process: {name: NAME}}", "duration: 2s",
                ["no running process matches name=NAME"]),
    "process-resource": ("resource.cpu", "{process: {cmdline: NAME}}",
                         "duration: 2s\n    with: {load: 50%}",
                         ["no running process matches cmdline=NAME"]),
    "interface": ("network.bandwidth", "{interface: {device: DEV}}",
                  "duration: 2s\n    with: {rate: 1MiB}", ["no network device 'DEV'"]),
    "netns": ("network.bandwidth", "{netns: {name: NAME, device: eth0}}",
              "duration: 2s\n    with: {rate: 1MiB}", ["no network namespace named 'NAME'"]),
}


@pytest.mark.parametrize("case", sorted(LOCAL_CASES))
def test_a_selector_that_matches_nothing_is_refused_with_the_selector(
        case: str, tmp_path: Path, state_dir: Path) -> None:
    fault_type, target, rest, needles = LOCAL_CASES[case]
    if case in ("interface", "netns") and os.geteuid() != 0:
        pytest.skip("kernel faults need root (without it they are refused for that first)")
    name, dev = unique_marker("nothing"), "chz" + unique_marker("")[-8:]

    def fill(text: str) -> str:
        return text.replace("NAME", name).replace("DEV", dev)

    path = tmp_path / "nothing.yaml"
    path.write_text(f"title: hits nothing\nfaults:\n  - type: {fault_type}\n"
                    f"    target: {fill(target)}\n    {rest}\n")
    code, journal, out = run(path, tmp_path)
    assert_refused(code, journal, out, *[fill(n) for n in needles])


def test_a_process_fault_after_the_services_started_is_refused_when_it_starts(
        tmp_path: Path, state_dir: Path, web_server: WebServer) -> None:
    """With services declared, the selector is resolved only when the fault starts: the steady
    state is measured, then the fault that matches nothing ends the run with exit 2."""
    name = unique_marker("nothing")
    path = tmp_path / "later.yaml"
    path.write_text(textwrap.dedent(f"""\
        title: the service runs but nothing matches
        services:
          - name: idle
            run: [{sys.executable}, -c, "import time; time.sleep(600)"]
        hypothesis:
          probes:
            - name: home
              http: {{url: "{web_server.url('/')}"}}
          before: {{window: 1s, every: 200ms}}
        faults:
          - type: process.suspend
            target: {{process: {{cmdline: {name}, service: idle}}}}
            duration: 2s
        """))
    code, journal, out = run(path, tmp_path)
    assert_refused(code, journal, out, f"no running process matches cmdline={name}, service=idle")
    assert journal["phases"]["before"]["passed"] is True
    assert "during" in journal["phases"]


def test_an_adapter_that_resolves_to_nothing_does_not_pass(
        tmp_path: Path, state_dir: Path) -> None:
    """A (plugin) adapter returning no targets and no error: before, the run ended exit 0,
    "hypothesis held", with nothing injected."""
    from chaos.adapters.base import Adapter, RevertOutcome, Scope, TargetRef
    from chaos.adapters.registry import AdapterRegistry
    from chaos.faults import default_registry as default_faults
    from chaos.model.experiment import FaultSpec
    from chaos.model.loader import load_text
    from chaos.model.source import SourceText
    from chaos.runner.load import vocabulary
    from chaos.runner.session import RunOptions, run_experiment

    class FindsNothing(Adapter):
        name = "test.finds-nothing"
        target_kind = "process"
        fault_types = ("process.suspend",)

        async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
            return []

        def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
            raise AssertionError("nothing to prepare")

        async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                         scope: Scope) -> dict[str, Any]:
            raise AssertionError("nothing to inject")

        async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
            return "nothing"

    registry = AdapterRegistry(default_faults())
    registry.add(FindsNothing())
    text = ("title: a plugin finds nothing\nfaults:\n  - type: process.suspend\n"
            "    target: {process: {name: anything}}\n    duration: 1s\n")
    experiment = load_text(SourceText("plugin.yaml", text), vocabulary(), {})
    record = asyncio.run(run_experiment(
        experiment, RunOptions(runs_dir=tmp_path / "runs", state_dir=state_dir),
        adapters=registry))
    journal = json.loads(record.journal_path.read_text())
    assert journal["exit_code"] == 2 and journal["verdict"] == "error", journal["reason"]
    assert "process(name=anything) matches nothing" in journal["reason"]
    assert journal["injections"] == []


def test_a_service_that_is_gone_when_its_fault_starts_is_refused_by_name(
        tmp_path: Path, state_dir: Path) -> None:
    path = tmp_path / "gone.yaml"
    path.write_text(textwrap.dedent(f"""\
        title: the service ended before its fault
        services:
          - name: quick
            run: [{sys.executable}, -c, "import time; time.sleep(0.5)"]
        faults:
          - type: process.suspend
            target: {{service: quick}}
            start: 3s
            duration: 2s
        """))
    code, journal, out = run(path, tmp_path)
    assert_refused(code, journal, out, "service quick exited (code 0) while the run held it")
