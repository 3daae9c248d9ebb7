"""The local adapters: processes, declared services, the clock, resources, the fault proxy and
the kernel (tc + nftables) on this machine or in a network namespace.

`register` is this package's one entry into the adapter registry; it imports the adapter
modules only when a registry is built, so importing the package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaos.adapters.base import Registrar


def register(registry: Registrar) -> None:
    """Add the built-in local adapters to `registry` (each is verified as it is added)."""
    from chaos.adapters.local import clock, kernel, process, proxy_adapter, resource, service

    for adapter in (process.ProcessAdapter(), service.ServiceAdapter(), clock.ClockAdapter(),
                    resource.HostResourceAdapter(), resource.ProcessResourceAdapter(),
                    proxy_adapter.ProxyAdapter(), kernel.InterfaceAdapter(),
                    kernel.NetnsAdapter()):
        registry.add(adapter)
