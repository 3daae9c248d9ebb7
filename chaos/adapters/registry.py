"""The adapter registry: (fault type, target kind) -> adapter, and revert dispatch by name.

Each adapter package registers its own adapters (`register(registry)` in its `__init__`); this
module composes them (BUILTINS) with third parties, who come through the `chaos.plugins`
entry-point group, whose callables receive `(faults, adapters)` and register fault types and
adapters together (chaos.plugin is what they may import). Adapters
are verified when they register (known fault types, a matching target kind, async methods), so
a broken plugin fails at start-up rather than in the middle of a fault.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from chaos.adapters import container, kubernetes, local
from chaos.adapters.base import Adapter, RevertOutcome
from chaos.errors import ChaosError, RevertFailed, UsageError
from chaos.faults import FaultRegistry
from chaos.faults import default_registry as default_faults
from chaos.faults.registry import PluginEntryPoint, load_plugins

PLUGIN_GROUP = "chaos.plugins"


class AdapterRegistry:
    def __init__(self, faults: FaultRegistry) -> None:
        self.faults = faults
        self._by_name: dict[str, Adapter] = {}
        self._by_route: dict[tuple[str, str], Adapter] = {}

    def add(self, adapter: Adapter) -> Adapter:
        if adapter.abstract:
            raise TypeError(f"{type(adapter).__name__} is abstract")
        if adapter.name in self._by_name:
            raise ValueError(f"adapter {adapter.name!r} is already registered")
        for method in ("resolve", "inject", "revert"):
            if not inspect.iscoroutinefunction(getattr(adapter, method)):
                raise TypeError(f"{adapter.name}.{method} must be async")
        for fault_name in adapter.fault_types:
            fault = self.faults.get(fault_name)
            if fault is None:
                raise ValueError(f"{adapter.name}: unknown fault type {fault_name!r}")
            if adapter.target_kind not in fault.target_kinds:
                raise ValueError(f"{adapter.name}: {fault_name} does not support target kind "
                                 f"{adapter.target_kind!r}")
            route = (fault_name, adapter.target_kind)
            if route in self._by_route:
                raise ValueError(f"{adapter.name}: {route} is served by "
                                 f"{self._by_route[route].name}")
            self._by_route[route] = adapter
        self._by_name[adapter.name] = adapter
        return adapter

    def route(self, fault_type: str, target_kind: str) -> Adapter:
        adapter = self._by_route.get((fault_type, target_kind))
        if adapter is None:
            raise UsageError(f"no adapter can inject {fault_type} into a {target_kind} target")
        return adapter

    def __iter__(self) -> Iterator[Adapter]:
        return iter(self._by_name.values())

    def adapters_for(self, fault_type: str) -> list[Adapter]:
        return [a for (f, _), a in self._by_route.items() if f == fault_type]

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        """Undo an injection from its revert spec alone; errors become RevertFailed."""
        adapter = self._by_name.get(str(spec.get("adapter")))
        if adapter is None:
            raise RevertFailed(f"no adapter named {spec.get('adapter')!r} is installed to revert "
                               "this injection")
        try:
            return await adapter.revert(spec)
        except ChaosError:
            raise
        except Exception as exc:  # the boundary: adapters' backend errors
            raise RevertFailed(f"{adapter.name}: {type(exc).__name__}: {exc}") from exc


# One registration function per adapter package; a new package adds itself here.
BUILTINS: tuple[Callable[[AdapterRegistry], None], ...] = (
    local.register, kubernetes.register, container.register)


def new_registry(faults: FaultRegistry | None = None, *, plugins: bool = False,
                 entries: Iterable[PluginEntryPoint] | None = None) -> AdapterRegistry:
    """A fresh registry of the built-in adapters (tests use one instead of the default); with
    `plugins`, the `chaos.plugins` entry points too (`entries` replaces the installed ones)."""
    registry = AdapterRegistry(faults or default_faults())
    for register in BUILTINS:  # none imports `kubernetes` or `docker` until a fault runs
        register(registry)
    if plugins:
        load_plugins(PLUGIN_GROUP, lambda plugin: plugin(registry.faults, registry), entries)
    return registry


@lru_cache(maxsize=1)
def default_registry() -> AdapterRegistry:
    """The process-wide registry: built-ins and installed plugins, loaded once."""
    return new_registry(plugins=True)
