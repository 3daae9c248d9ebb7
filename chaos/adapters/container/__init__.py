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

from chaos.adapters.base import Adapter


def adapters() -> list[Adapter]:
    """The built-in container adapters, for chaos.adapters.registry."""
    from chaos.adapters.container import disk, lifecycle, network, resource

    return [lifecycle.ContainerLifecycleAdapter(), network.ContainerNetworkAdapter(),
            resource.ContainerResourceAdapter(), disk.ContainerDiskAdapter()]
