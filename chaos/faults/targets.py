"""Target kinds: how a fault says what it hits. The kind picks the adapter.

Local kinds (process, service) and the Kubernetes kinds (pods, deployment, statefulset, node)
are declared here; the network and resource modules declare their own (proxy, interface, host).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from chaos.model.experiment import Target
from chaos.model.schema import (
    Field,
    Int,
    List,
    Map,
    Obj,
    Regex,
    Scalar,
    Schema,
    Str,
    scalar_as,
)

def flagged(schema: Schema, flag: str, help: str) -> Field:
    """A selector field that `chaos inject --FLAG` sets; `help` is that flag's help."""
    return Field(schema, flag=flag, help=help)


PROCESS = Obj({
    "name": flagged(Str("process name (as in ps -o comm) or executable basename"),
                    "process", "process name (as in ps) or executable basename"),
    "cmdline": flagged(Regex("regular expression searched in the full command line"),
                       "cmdline", "regular expression searched in the command line"),
    "pid": flagged(Int("process id", min=1), "pid", "process id"),
    "pidfile": flagged(Str("file holding the process id"), "pidfile",
                       "file holding the process id"),
    "user": flagged(Str("owner user name"), "user", "only processes of this user"),
    "service": Str("only processes a declared service started: its process and the ones below "
                   "it (resolved when the fault starts)", min_length=1),
}, "local processes; all given fields must match")


SERVICE = Obj({"name": Str("a service declared under services", min_length=1)},
              "a service declared in this experiment: `target: {service: NAME}`",
              shorthand=scalar_as("name"))

# Kubernetes. The experiment's `kubernetes:` section says which cluster and which namespaces
# may be touched; a selector's `namespace` defaults to the kubeconfig context's namespace.
NAMESPACE = Str("namespace (default: the kubeconfig context's)",
                pattern=r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABELS = Map(Str(), "labels the objects must all carry, e.g. {app: web}")

# Traffic filters of the kernel adapter (interface, netns) and of in-pod network faults: they
# select *which traffic* is hit, so they belong to the target.
TRAFFIC_FILTERS = {
    "host": Str("only traffic to/from this IP address"),
    "cidr": Str("only traffic to/from this network, e.g. 10.0.0.0/8"),
    "port": Int("only traffic to/from this TCP/UDP port", min=1, max=65535),
    "protocol": Str("only this protocol", "all", choices=("all", "tcp", "udp", "icmp")),
    "direction": Str("ingress (arriving), egress (leaving) or both", "both",
                     choices=("both", "ingress", "egress")),
}

# `chaos inject` flags of the traffic filters: they are declared on the interface kind (the
# flags' home; --netns moves them into a namespace, pod and container flags into each target)
FILTER_FLAGS = {
    "host": ("host", "kernel: only traffic to/from this IP address"),
    "cidr": ("cidr", "kernel: only traffic to/from this network"),
    "port": ("port", "kernel: only traffic to/from this port"),
    "protocol": ("protocol", "kernel: tcp, udp, icmp or all"),
    # shown as --direction, shared with the proxy's (see chaos.cli.inject)
    "direction": ("traffic", "kernel: ingress (arriving), egress or both"),
}


def _without_default(schema: Scalar) -> Scalar:
    """The same field, unset unless given (an empty pods selector stays detectable)."""
    unset = copy.copy(schema)
    unset.default = None
    return unset


without_default = _without_default  # for the other target kinds with traffic filters


PODS = Obj({
    "namespace": NAMESPACE,
    "labels": LABELS,
    "fields": Str("field selector, e.g. status.phase=Running", min_length=1),
    "names": List(Str(min_length=1), "only pods with these names"),
    "node": Str("only pods scheduled on this node", min_length=1),
    # in-pod network faults only: which device and traffic inside each pod (tc + nftables)
    "device": Str("in-pod network faults: the pod's network device (default: eth0)",
                  min_length=1),
    **{k: _without_default(v) for k, v in TRAFFIC_FILTERS.items()},  # in-pod network faults
}, "pods in a namespace; namespace, labels, fields, names and node must all match. Beside it, "
   "`count: 1` hits one pod (chosen by the run's seed), `count: N` or `percent: P` some, none "
   "of them: all. device and the traffic filters apply to in-pod network faults only")
POD_TRAFFIC_FIELDS = ("device", *TRAFFIC_FILTERS)  # not selectors: what in-pod faults touch


def no_pod_traffic(target: Target, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A FaultType check: device and the traffic filters select traffic inside pods for the
    in-pod network faults; any other fault on pods would silently ignore them."""
    if target.kind != "pods":
        return []
    why = ("selects traffic for in-pod network faults only (network.latency, bandwidth, loss, "
           "corruption on pods); this fault does not use it: remove it")
    return [(f"target.pods.{key}", f"{key} {why}") for key in POD_TRAFFIC_FIELDS
            if target.selector.get(key) is not None]


def _workload(kind: str) -> Obj:
    return Obj({
        "namespace": NAMESPACE,
        "name": Str(f"the {kind}'s name", min_length=1),
        "labels": LABELS,
    }, f"a {kind} by name or labels: `target: {{{kind.lower()}: web}}`",
        shorthand=scalar_as("name"))


DEPLOYMENT = _workload("Deployment")
STATEFULSET = _workload("StatefulSet")

NODE = Obj({
    "name": Str("the node's name", min_length=1),
    "labels": LABELS,
}, "cluster nodes by name or labels: `target: {node: worker-1}`", shorthand=scalar_as("name"))
