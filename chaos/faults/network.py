"""Network faults, and the target kinds that say where they apply.

Local adapters serve them, picked by target kind: `proxy` (a userspace TCP fault proxy
between a listen address and an upstream; no privileges; per-connection toxics) and `interface`
/ `netns` (the kernel: tc tbf/netem on a device, nftables rules in a table chaos owns; needs
root or CAP_NET_ADMIN). Filters belong to the target, because they select *what* is hit:
direction and toxicity for the proxy, host/CIDR/port/protocol/direction for the kernel.
On `pods` (chaos.adapters.kubernetes) latency, loss, corruption and bandwidth run tc in an
ephemeral container in each pod; partition is a NetworkPolicy that isolates the selected pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaos.faults import container, targets
from chaos.faults.registry import FaultRegistry, FaultType
from chaos.model.experiment import Target
from chaos.model.schema import Bool, Duration, Field, Int, Obj, Percent, Size, Str

ADDRESS = r"[A-Za-z0-9_.:\[\]-]*:[0-9]{1,5}"
PROXY = Obj({
    "listen": Field(Str("address the proxy listens on, HOST:PORT (use 127.0.0.1)",
                        pattern=ADDRESS), required=True,
                    flag="listen", help="fault proxy: address it listens on, HOST:PORT"),
    "upstream": Field(Str("address the proxy forwards to, HOST:PORT", pattern=ADDRESS),
                      required=True,
                      flag="upstream", help="fault proxy: address it relays to, HOST:PORT"),
    # shown as --direction, shared with the kernel's (see chaos.cli.inject)
    "direction": targets.flagged(
        Str("which byte stream is affected: downstream (server to client), upstream "
            "(client to server) or both", "downstream", choices=("downstream", "upstream", "both")),
        "stream", "fault proxy: downstream, upstream or both"),
    "toxicity": targets.flagged(Percent("share of connections affected (each decides once)",
                                        "100%"),
                                "toxicity", "fault proxy: share of connections hit, e.g. 50%"),
    "protocol": Str("what the proxy speaks: tcp relays bytes (network faults), http reads "
                    "HTTP/1.x requests (http faults); default: what the fault needs",
                    choices=("tcp", "http")),
    "upstream_tls": Bool("protocol http: the upstream is HTTPS; the proxy speaks TLS to it "
                         "(without verifying its certificate) and plain HTTP to clients",
                         False),
}, "a fault proxy between `listen` and `upstream` (no privileges needed)")

_FILTERS = targets.TRAFFIC_FILTERS
INTERFACE = Obj({
    "device": Field(Str("network device, e.g. eth0 or lo", min_length=1), required=True,
                    flag="device", help="kernel: network device (with --netns: inside it; "
                                        "with pod flags: in each pod)"),
    **{k: targets.flagged(v, *targets.FILTER_FLAGS[k]) for k, v in _FILTERS.items()},
}, "a network device of this host (tc + nftables; needs root or CAP_NET_ADMIN)")
NETNS = Obj({
    "name": Field(Str("network namespace name (as in `ip netns list`)", min_length=1),
                  required=True, flag="netns", help="kernel: network namespace holding --device"),
    "device": Field(Str("network device inside the namespace, e.g. veth0", min_length=1),
                    required=True),
    **_FILTERS,
}, "a device inside a named network namespace (tc + nftables; needs root)")

# container: the same kernel recipes inside the container's network namespace
KERNEL = ("interface", "netns", "container")
ALL = ("proxy", *KERNEL, "pods")  # pods: tc in an ephemeral container in each pod


def _percent(doc: str) -> Field:
    return Field(Percent(doc), required=True)


LATENCY = FaultType(
    name="network.latency",
    summary="delay traffic by a fixed time plus uniform jitter",
    params=Obj({
        "delay": Field(Duration("added delay, once per affected direction", max=60), required=True),
        "jitter": Duration("random variation, uniform in [-jitter, +jitter]", "0ms", max=60),
        "correlation": Percent("kernel only (netem): how much each delay depends on the last",
                               "0%"),
    }),
    target_kinds=ALL,
)
BANDWIDTH = FaultType(
    name="network.bandwidth",
    summary="limit throughput to a rate in bytes per second",
    params=Obj({
        "rate": Field(Size("bytes per second, e.g. 512KiB (per connection on a proxy)"),
                      required=True),
    }),
    target_kinds=ALL,
)
def partition_check(target: Target,
                     params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """On pods, a partition is a NetworkPolicy: its podSelector is the target's labels."""
    if target.kind != "pods":
        return [("with.verify_port", "only a partition of pods (a NetworkPolicy) is verified "
                 "this way: remove it")] if params.get("verify_port") is not None else []
    why = "network.partition on pods is a NetworkPolicy over every pod its labels select"
    problems = targets.no_pod_traffic(target, params)
    problems += [(f"target.pods.{key}", f"{why}: select by labels only, remove {key}")
                 for key in ("fields", "names", "node") if target.selector.get(key)]
    problems += [(f"target.{key}", f"{why}: it cannot hit only some of them, remove {key}")
                 for key in ("count", "percent") if getattr(target, key) is not None]
    if not target.selector.get("labels"):
        problems.append(("target.pods", f"{why}: add `labels` (its podSelector)"))
    return problems


def partition_checks(target: Target, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [*partition_check(target, params), *container.peer_check(target, params)]


PARTITION = FaultType(
    name="network.partition",
    summary="cut the selected traffic off: the proxy refuses and resets connections, the "
            "kernel drops packets",
    params=Obj({
        "verify_port": Int("pods only: a TCP port the pods listen on; the fault counts as "
                           "injected only once new connections from the runner to each pod's "
                           "IP on it fail (the runner must reach pod IPs: run it in the "
                           "cluster)", min=1, max=65535),
    }),
    target_kinds=ALL,
    check=partition_checks,
)
LOSS = FaultType(
    name="network.loss",
    summary="drop a share of the selected packets",
    params=Obj({
        "percent": _percent("share of packets dropped"),
        "correlation": Percent("netem only: how much each drop depends on the last", "0%"),
    }),
    target_kinds=(*KERNEL, "pods"),
)
CORRUPTION = FaultType(
    name="network.corruption",
    summary="flip a random bit in a share of packets (tc netem)",
    params=Obj({"percent": _percent("share of packets corrupted")}),
    target_kinds=(*KERNEL, "pods"),
)
DUPLICATION = FaultType(
    name="network.duplication",
    summary="send a share of packets twice (tc netem)",
    params=Obj({"percent": _percent("share of packets duplicated")}),
    target_kinds=KERNEL,
)
DNS = FaultType(
    name="network.dns",
    summary="make DNS fail: drop traffic to port 53 (UDP and TCP)",
    params=Obj({}),
    target_kinds=KERNEL,
)
RESET = FaultType(
    name="network.reset",
    summary="reset connections (TCP RST) after they have been open for a while",
    params=Obj({"after": Duration("connection age before the reset", "0ms")}),
    target_kinds=("proxy",),
)
TIMEOUT = FaultType(
    name="network.timeout",
    summary="let no data through (a blackhole); close the connection after `after` unless 0",
    params=Obj({"after": Duration("close the connection after this long; 0ms holds it open",
                                  "0ms")}),
    target_kinds=("proxy",),
)
SLOW_CLOSE = FaultType(
    name="network.slow_close",
    summary="delay passing on the close of a connection",
    params=Obj({"delay": Field(Duration("delay before the close is passed on", max=3600),
                               required=True)}),
    target_kinds=("proxy",),
)
SLICER = FaultType(
    name="network.slicer",
    summary="split data into small slices sent with a delay between them",
    params=Obj({
        "size": Size("average slice size in bytes", "64"),
        "variation": Size("random variation of the slice size in bytes", "0"),
        "delay": Duration("pause between slices", "1ms", max=10),
    }),
    target_kinds=("proxy",),
)
LIMIT_DATA = FaultType(
    name="network.limit_data",
    summary="close each connection after it has carried a number of bytes",
    params=Obj({"bytes": Field(Size("bytes let through before the close"), required=True)}),
    target_kinds=("proxy",),
)

FAULTS = (LATENCY, BANDWIDTH, PARTITION, LOSS, CORRUPTION, DUPLICATION, DNS, RESET, TIMEOUT,
          SLOW_CLOSE, SLICER, LIMIT_DATA)


def register(registry: FaultRegistry) -> None:
    registry.add_target_kind("proxy", PROXY)
    registry.add_target_kind("interface", INTERFACE)
    registry.add_target_kind("netns", NETNS)
    for fault in FAULTS:
        registry.add(fault)
