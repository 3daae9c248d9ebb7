"""chaos.plugin is the contract with plugin authors: `__all__` names everything it exports,
and everything it names resolves (as httpx checks its own `__all__`); what the docs made
plugin authors reach for elsewhere is there; importing it stays cheap."""

from __future__ import annotations

import inspect
import subprocess
import sys

import chaos.plugin

NOT_EXPORTED = {"annotations", "TYPE_CHECKING", "Any", "importlib"}  # its own imports


def test_every_public_name_is_in_all() -> None:
    public = {name for name, value in vars(chaos.plugin).items()
              if not name.startswith("_") and not inspect.ismodule(value)
              and name not in NOT_EXPORTED}
    lazy = set(chaos.plugin._LAZY)  # imported on first use
    assert public | lazy == set(chaos.plugin.__all__)
    assert set(dir(chaos.plugin)) == set(chaos.plugin.__all__)


def test_what_the_docs_needed_from_elsewhere_is_exported() -> None:
    from chaos.errors import ProbeError
    from chaos.slo.http_client import request
    from chaos.testing import render_report, run_in_process

    assert chaos.plugin.ProbeError is ProbeError
    assert chaos.plugin.http_request is request
    assert chaos.plugin.run_in_process is run_in_process
    assert chaos.plugin.render_report is render_report


def test_importing_it_loads_no_adapter_test_seam_or_http_stack() -> None:
    """A plugin that declares fault types is imported by `chaos validate`: it must not pay for
    the adapters (psutil), the test seam (asyncio) or the HTTP client (ssl)."""
    heavy = ("asyncio", "ssl", "psutil", "chaos.testing", "chaos.adapters.base",
             "chaos.reports.collection", "chaos.slo.http_client")
    code = ("import sys, chaos.plugin; from chaos.plugin import FaultType, Obj, Str; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60).stdout.strip()
    assert loaded == "[]"


def test_all_lists_each_name_once_and_each_resolves() -> None:
    assert len(chaos.plugin.__all__) == len(set(chaos.plugin.__all__))
    for name in chaos.plugin.__all__:
        assert getattr(chaos.plugin, name) is not None, name


def test_the_extension_points_are_all_there() -> None:
    wanted = {"FaultType", "Obj", "Adapter", "TargetRef", "RevertOutcome", "FaultRegistry",
              "AdapterRegistry", "ReporterRegistry", "Reporter", "default_fault_registry",
              "default_adapter_registry", "default_reporter_registry", "ProbeKind",
              "ProbeError", "http_request", "run_in_process", "RecordingAdapter",
              "registry_with", "render_report"}
    assert wanted <= set(chaos.plugin.__all__)
