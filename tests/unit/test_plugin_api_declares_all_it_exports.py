"""chaos.plugin is the contract with plugin authors: `__all__` names everything it exports,
and everything it names resolves (as httpx checks its own `__all__`)."""

from __future__ import annotations

import inspect

import chaos.plugin


def test_every_public_name_is_in_all() -> None:
    public = {name for name, value in vars(chaos.plugin).items()
              if not name.startswith("_") and not inspect.ismodule(value)
              and name != "annotations"}  # `from __future__ import annotations`
    assert public == set(chaos.plugin.__all__)


def test_all_lists_each_name_once_and_each_resolves() -> None:
    assert len(chaos.plugin.__all__) == len(set(chaos.plugin.__all__))
    for name in chaos.plugin.__all__:
        assert getattr(chaos.plugin, name) is not None, name


def test_the_extension_points_are_all_there() -> None:
    wanted = {"FaultType", "Obj", "Adapter", "TargetRef", "RevertOutcome", "FaultRegistry",
              "AdapterRegistry", "ReporterRegistry", "Reporter", "default_fault_registry",
              "default_adapter_registry", "default_reporter_registry"}
    assert wanted <= set(chaos.plugin.__all__)
