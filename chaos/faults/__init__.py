"""The fault catalogue as data. `default_registry()` holds the built-ins; plugins from the
`chaos.plugins` entry-point group are added by `chaos.adapters.registry.default_registry()`,
which registers their fault types here together with their adapters."""

from __future__ import annotations

from functools import lru_cache

from chaos.faults import (
    clock,
    container,
    http,
    kubernetes,
    network,
    process,
    resource,
    targets,
    tls,
)
from chaos.faults.registry import FaultRegistry, FaultType

__all__ = ["FaultRegistry", "FaultType", "default_registry", "new_registry"]


def new_registry() -> FaultRegistry:
    registry = FaultRegistry()
    registry.add_target_kind("process", targets.PROCESS)
    registry.add_target_kind("service", targets.SERVICE)
    kubernetes.register_targets(registry)
    container.register_targets(registry)
    process.register(registry)
    resource.register(registry)
    network.register(registry)
    http.register(registry)
    tls.register(registry)
    clock.register(registry)
    kubernetes.register(registry)
    container.register(registry)
    return registry


@lru_cache(maxsize=1)
def default_registry() -> FaultRegistry:
    return new_registry()
