"""The public API for plugin authors: what a third-party fault, adapter, probe kind or report
format may import, and what its tests may use. `__all__` is the contract; everything else in
chaos may change between releases.

A plugin is an entry point. In the `chaos.plugins` group it is called with
`(faults, adapters)` — a FaultRegistry and an AdapterRegistry — and registers fault types,
target kinds and adapters; in the `chaos.reporters` group it is called with a ReporterRegistry
and registers report formats; the `chaos.probes` group names a ProbeKind. Each registry
verifies what is added at once (pluggy-style), so a broken plugin is named at start-up. Tests
build fresh registries with the `new_*_registry` functions instead of touching the
process-wide defaults, and run experiments in-process with `run_in_process` (chaos.testing).
docs/extending.md has worked examples, docs/testing.md the test seam.

Importing this module stays cheap: a plugin that only declares fault types is imported by
`chaos validate`, so the fault catalogue and the schema language are imported here, and the
rest (adapters, reports, probes, the HTTP client, the test seam) when a name of theirs is
first used (module `__getattr__`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from chaos.errors import (
    ChaosError,
    FaultFailed,
    PermissionDenied,
    ProbeError,
    RevertFailed,
    TargetNotFound,
)
from chaos.faults import FaultRegistry, FaultType
from chaos.faults import default_registry as default_fault_registry
from chaos.faults import new_registry as new_fault_registry
from chaos.faults.registry import PluginEntryPoint, load_plugins
from chaos.model.experiment import FaultSpec, Target
from chaos.model.schema import (
    Any_,
    Argv,
    Bool,
    Duration,
    Field,
    Int,
    List,
    Map,
    Obj,
    OneOf,
    Percent,
    Rate,
    Regex,
    Schema,
    Size,
    Str,
    scalar_as,
)

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from chaos.adapters.base import Adapter, RevertOutcome, Scope, TargetRef
    from chaos.adapters.registry import PLUGIN_GROUP as ADAPTER_PLUGIN_GROUP
    from chaos.adapters.registry import AdapterRegistry
    from chaos.adapters.registry import default_registry as default_adapter_registry
    from chaos.adapters.registry import new_registry as new_adapter_registry
    from chaos.reports.collection import Collection, Entry
    from chaos.reports.registry import PLUGIN_GROUP as REPORTER_PLUGIN_GROUP
    from chaos.reports.registry import Output, Placement, Rendered, Reporter, ReporterRegistry
    from chaos.reports.registry import default_registry as default_reporter_registry
    from chaos.reports.registry import new_registry as new_reporter_registry
    from chaos.slo.http_client import HttpFailed, Reply
    from chaos.slo.http_client import request as http_request
    from chaos.slo.probe_kinds import PLUGIN_GROUP as PROBE_PLUGIN_GROUP
    from chaos.slo.probe_kinds import ProbeKind, ProbeKinds, default_probe_kinds, new_probe_kinds
    from chaos.testing import (
        Call,
        InProcessRun,
        ManualClock,
        MemoryLedger,
        RecordingAdapter,
        registry_with,
        render_report,
        run_in_process,
        run_in_process_async,
    )

# name -> (module, attribute): imported on first use
_LAZY: dict[str, tuple[str, str]] = {
    **{n: ("chaos.adapters.base", n) for n in ("Adapter", "RevertOutcome", "Scope", "TargetRef")},
    "AdapterRegistry": ("chaos.adapters.registry", "AdapterRegistry"),
    "ADAPTER_PLUGIN_GROUP": ("chaos.adapters.registry", "PLUGIN_GROUP"),
    "default_adapter_registry": ("chaos.adapters.registry", "default_registry"),
    "new_adapter_registry": ("chaos.adapters.registry", "new_registry"),
    **{n: ("chaos.reports.collection", n) for n in ("Collection", "Entry")},
    **{n: ("chaos.reports.registry", n)
       for n in ("Output", "Placement", "Rendered", "Reporter", "ReporterRegistry")},
    "REPORTER_PLUGIN_GROUP": ("chaos.reports.registry", "PLUGIN_GROUP"),
    "default_reporter_registry": ("chaos.reports.registry", "default_registry"),
    "new_reporter_registry": ("chaos.reports.registry", "new_registry"),
    **{n: ("chaos.slo.probe_kinds", n)
       for n in ("ProbeKind", "ProbeKinds", "default_probe_kinds", "new_probe_kinds")},
    "PROBE_PLUGIN_GROUP": ("chaos.slo.probe_kinds", "PLUGIN_GROUP"),
    "http_request": ("chaos.slo.http_client", "request"),
    **{n: ("chaos.slo.http_client", n) for n in ("HttpFailed", "Reply")},
    **{n: ("chaos.testing", n)
       for n in ("Call", "InProcessRun", "ManualClock", "MemoryLedger", "RecordingAdapter",
                 "registry_with", "render_report", "run_in_process", "run_in_process_async")},
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'chaos.plugin' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # once: later lookups are plain module attributes
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    # faults: the catalogue as data, and the schema language their parameters are declared in
    "FaultType", "FaultRegistry", "new_fault_registry", "default_fault_registry",
    "Schema", "Obj", "Field", "Str", "Int", "Bool", "Duration", "Percent", "Rate", "Size",
    "Regex", "List", "Map", "OneOf", "Argv", "Any_", "scalar_as", "Target", "FaultSpec",
    # adapters: how a fault reaches a target, and how it is undone from its revert spec alone
    "Adapter", "TargetRef", "Scope", "RevertOutcome", "AdapterRegistry", "new_adapter_registry",
    "default_adapter_registry", "ADAPTER_PLUGIN_GROUP",
    # report formats
    "Reporter", "Placement", "Output", "Rendered", "Collection", "Entry", "ReporterRegistry",
    "new_reporter_registry", "default_reporter_registry", "REPORTER_PLUGIN_GROUP",
    # probe kinds: one question a probe asks, its schema and default timeout declared once;
    # an HTTP-speaking probe sends through chaos's one HTTP client (TLS, secrets masked)
    "ProbeKind", "ProbeKinds", "new_probe_kinds", "default_probe_kinds", "PROBE_PLUGIN_GROUP",
    "http_request", "HttpFailed", "Reply",
    # the plugin route shared by the registries, and the errors plugins raise
    "PluginEntryPoint", "load_plugins",
    "ChaosError", "FaultFailed", "PermissionDenied", "RevertFailed", "TargetNotFound",
    "ProbeError",
    # the test seam: a plugin tested in-process, through the real engine and report renderers
    "run_in_process", "run_in_process_async", "InProcessRun", "render_report",
    "RecordingAdapter", "MemoryLedger", "ManualClock", "Call", "registry_with",
]
