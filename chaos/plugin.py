"""The public API for plugin authors: what a third-party fault, adapter or report format may
import. `__all__` is the contract; everything else in chaos may change between releases.

A plugin is an entry point. In the `chaos.plugins` group it is called with
`(faults, adapters)` — a FaultRegistry and an AdapterRegistry — and registers fault types,
target kinds and adapters; in the `chaos.reporters` group it is called with a ReporterRegistry
and registers report formats. Each registry verifies what is added at once (pluggy-style), so
a broken plugin is named at start-up. Tests build fresh registries with the `new_*_registry`
functions instead of touching the process-wide defaults. docs/extending.md has worked examples.
"""

from __future__ import annotations

from chaos.adapters.base import Adapter, RevertOutcome, Scope, TargetRef
from chaos.adapters.registry import PLUGIN_GROUP as ADAPTER_PLUGIN_GROUP
from chaos.adapters.registry import AdapterRegistry
from chaos.adapters.registry import default_registry as default_adapter_registry
from chaos.adapters.registry import new_registry as new_adapter_registry
from chaos.errors import ChaosError, FaultFailed, PermissionDenied, RevertFailed, TargetNotFound
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
from chaos.reports.collection import Collection, Entry
from chaos.reports.registry import PLUGIN_GROUP as REPORTER_PLUGIN_GROUP
from chaos.reports.registry import Output, Placement, Rendered, Reporter, ReporterRegistry
from chaos.reports.registry import default_registry as default_reporter_registry
from chaos.reports.registry import new_registry as new_reporter_registry
from chaos.slo.probe_kinds import PLUGIN_GROUP as PROBE_PLUGIN_GROUP
from chaos.slo.probe_kinds import ProbeKind, ProbeKinds, default_probe_kinds, new_probe_kinds

from chaos.testing import Call, ManualClock, MemoryLedger, RecordingAdapter, registry_with

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
    # probe kinds: one question a probe asks, its schema and default timeout declared once
    "ProbeKind", "ProbeKinds", "new_probe_kinds", "default_probe_kinds", "PROBE_PLUGIN_GROUP",
    # the plugin route shared by the registries, and the errors adapters raise
    "PluginEntryPoint", "load_plugins",
    # the test seam: a plugin's adapter tested in-process against a recording ledger and clock
    "RecordingAdapter", "MemoryLedger", "ManualClock", "Call", "registry_with",
    "ChaosError", "FaultFailed", "PermissionDenied", "RevertFailed", "TargetNotFound",
]
