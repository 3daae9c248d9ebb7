"""Container faults (Docker, Podman), declared as data, and the `container` target kind.

The adapters (chaos.adapters.container) implement them through the Docker Engine API; declaring
them here lets validation, `chaos faults` and `chaos inject` know them without importing the
`docker` client. `container.kill` is the Kubernetes fault type (chaos.faults.kubernetes), which
accepts this target kind too. The network.* and resource.* types accept `container` as well:
they run the local kernel recipes inside the container's network namespace and the local
burner workers inside its cgroups.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaos.faults import targets
from chaos.faults.registry import FaultRegistry, FaultType
from chaos.model.experiment import Target
from chaos.model.schema import Duration, Obj, Str, scalar_as

KIND = "container"
LABEL = r"[^=\s]+(=.*)?"

COMPOSE = Obj({
    "project": Str("the Compose project (label com.docker.compose.project)", min_length=1),
    "service": Str("the Compose service (label com.docker.compose.service)", min_length=1),
}, "containers of a Compose stack: `compose: {project: shop, service: payments}`")

SELECTOR_FIELDS = {
    "name": Str("the container's name (exact, without the leading /)", min_length=1),
    "id": Str("the container's id, or a prefix of it", pattern=r"[0-9a-f]{4,64}"),
    "label": Str("a label the containers carry: `k=v`, or `k` for any value", pattern=LABEL),
    "image": Str("the image the containers run (as `docker ps` shows it, or its id)",
                 min_length=1),
    "compose": COMPOSE,
}
PEER = Obj(SELECTOR_FIELDS, "network faults: only traffic to/from these other containers "
                            "(their addresses on the container networks), e.g. a partition "
                            "between two Compose services: `peer: {compose: {project: shop, "
                            "service: cache}}`")

CONTAINER = Obj({
    **SELECTOR_FIELDS,
    "peer": PEER,
    # network faults only: which device and traffic inside the container's network namespace
    "device": Str("network faults: the device inside the container (default: eth0)",
                  min_length=1),
    **{k: targets.without_default(v) for k, v in targets.TRAFFIC_FILTERS.items()},
}, "Docker or Podman containers (the Engine API; DOCKER_HOST honoured); all given selectors "
   "must match. Beside it, `count`/`percent` pick some by the run's seed. device and the "
   "traffic filters apply to network faults only", shorthand=scalar_as("name"))
SELECTORS = tuple(SELECTOR_FIELDS)
TRAFFIC_FIELDS = ("device", "peer", *targets.TRAFFIC_FILTERS)


def no_container_traffic(target: Target, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """device and the traffic filters select traffic for network faults; others ignore them."""
    if target.kind != KIND:
        return []
    why = ("selects traffic for network faults inside the container only; this fault does not "
           "use it: remove it")
    return [(f"target.container.{key}", f"{key} {why}") for key in TRAFFIC_FIELDS
            if target.selector.get(key) is not None]


def needs_a_selector(target: Target, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An empty container selector would hit every container of the engine."""
    if target.kind != KIND or any(target.selector.get(k) for k in SELECTORS):
        return []
    return [("target.container", "select containers by name, id, label, image or compose "
                                 "(an empty selector would hit every container)")]


def peer_check(target: Target, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A peer's addresses are the traffic filter: host/cidr beside it would contradict it."""
    if target.kind != KIND or not target.selector.get("peer"):
        return []
    return [(f"target.container.{key}", f"{key} and peer both say which addresses: give one")
            for key in ("host", "cidr") if target.selector.get(key)]


def lifecycle_check(target: Target, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [*needs_a_selector(target, params), *no_container_traffic(target, params)]


PAUSE = FaultType(
    name="container.pause",
    summary="freeze every process of a container (cgroup freezer); the revert unpauses it",
    params=Obj({}),
    target_kinds=(KIND,),
    check=lifecycle_check,
)
STOP = FaultType(
    name="container.stop",
    summary="stop a container (TERM, then KILL after the grace period); the revert starts it "
            "again",
    params=Obj({
        "grace_period": Duration("time the container gets to stop before SIGKILL", "10s",
                                 min=0, max=3600),
    }),
    target_kinds=(KIND,),
    check=lifecycle_check,
)
RESTART = FaultType(
    name="container.restart",
    summary="restart a container (stop, then start; nothing to revert)",
    params=Obj({
        "grace_period": Duration("time the container gets to stop before SIGKILL", "10s",
                                 min=0, max=3600),
    }),
    target_kinds=(KIND,),
    instant=True,
    check=lifecycle_check,
)

FAULTS = (PAUSE, STOP, RESTART)


def register_targets(registry: FaultRegistry) -> None:
    """Before the network, resource and Kubernetes faults, which accept `container` too."""
    registry.add_target_kind(KIND, CONTAINER)


def register(registry: FaultRegistry) -> None:
    for fault in FAULTS:
        registry.add(fault)
