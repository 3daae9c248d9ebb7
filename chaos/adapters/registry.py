"""The adapter registry: (fault type, target kind) -> adapter, and revert dispatch by name.

Built-ins register here; third parties through the `chaos.plugins` entry-point group, whose
callables receive `(faults, adapters)` and register fault types and adapters together. Adapters
are verified when they register (known fault types, a matching target kind, async methods), so
a broken plugin fails at start-up rather than in the middle of a fault.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator, Mapping
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from chaos.adapters.base import Adapter, RevertOutcome
from chaos.errors import ChaosError, RevertFailed, UsageError
from chaos.faults import FaultRegistry
from chaos.faults import default_registry as default_faults

log = logging.getLogger(__name__)
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


def new_registry(faults: FaultRegistry | None = None, *, plugins: bool = False) -> AdapterRegistry:
    from chaos.adapters.container import adapters as container_adapters
    from chaos.adapters.kubernetes import adapters as kubernetes_adapters
    from chaos.adapters.local import clock, kernel, process, proxy_adapter, resource, service

    registry = AdapterRegistry(faults or default_faults())
    registry.add(process.ProcessAdapter())
    registry.add(service.ServiceAdapter())
    registry.add(clock.ClockAdapter())
    registry.add(resource.HostResourceAdapter())
    registry.add(resource.ProcessResourceAdapter())
    registry.add(proxy_adapter.ProxyAdapter())
    registry.add(kernel.InterfaceAdapter())
    registry.add(kernel.NetnsAdapter())
    for adapter in kubernetes_adapters():  # imports no `kubernetes` until a fault runs
        registry.add(adapter)
    for adapter in container_adapters():  # imports no `docker` until a fault runs
        registry.add(adapter)
    if plugins:
        for ep in entry_points(group=PLUGIN_GROUP):
            try:
                ep.load()(registry.faults, registry)
            except Exception as exc:  # noqa: BLE001 - name the broken plugin, keep going
                log.warning("plugin %s failed to register: %s", ep.name, exc)
    return registry


@lru_cache(maxsize=1)
def default_registry() -> AdapterRegistry:
    return new_registry(plugins=True)
