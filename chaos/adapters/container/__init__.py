"""The container adapter: Docker and Podman containers through the Engine API.

The only package that imports the `docker` SDK, and only inside functions (engine_api), so
importing this package (the adapter registry does) costs nothing until a container fault runs.

    engine_api  the call boundary: the engine's address (DOCKER_HOST), errors mapped, threads
    selection   containers from selectors; identity = id + start time + main process; guards
    lifecycle   container.pause / stop / restart / kill (one recipe per fault type)
    network     network.* in the container's network namespace (the local kernel recipes)
    resource    resource.* in the container's cgroups (the local burner workers)
    disk        resource.disk_fill in the container's filesystem (through /proc/PID/root)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.adapters.base import Adapter

if TYPE_CHECKING:
    from chaos.adapters.base import Registrar


def adapters() -> list[Adapter]:
    """The built-in container adapters, each a fresh instance."""
    from chaos.adapters.container import disk, lifecycle, network, resource

    return [lifecycle.ContainerLifecycleAdapter(), network.ContainerNetworkAdapter(),
            resource.ContainerResourceAdapter(), disk.ContainerDiskAdapter()]


def register(registry: Registrar) -> None:
    """Add the built-in container adapters to `registry` (each is verified as it is added)."""
    for adapter in adapters():
        registry.add(adapter)
