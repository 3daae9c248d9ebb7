"""The kernel network faults as data: one recipe per fault type, and the rules made from it.

A recipe says how a fault type reaches the kernel: the root qdisc it installs on a whole device
(tc netem or tbf), or the packets it drops with a firewall rule (nftables, or the iptables
fallback) and which share of them, or both with the condition that picks one (loss with a
correlation needs netem; plain loss is a filter). The kernel adapter, the container network
adapter and the in-pod agent serve exactly the fault types of `RECIPES`, so adding a kernel
fault is one `FaultType` and one recipe here.

The rule builders below are pure functions of a recipe, the fault's parameters and the target's
filters: nft and iptables read the same recipe, so the DNS rule (any protocol, port 53) and the
sampled drop are written once for both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chaos.errors import PermissionDenied
from chaos.model.experiment import FaultSpec

Params = Mapping[str, Any]


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f}us"


def _pct(share: float) -> str:
    return f"{share * 100:g}%"


def netem_delay(p: Params) -> list[str]:
    args = ["netem", "delay", _us(p["delay"])]
    if p.get("jitter"):
        args += [_us(p["jitter"])]
        if p.get("correlation"):
            args += [_pct(p["correlation"])]
    return args


def netem_loss(p: Params) -> list[str]:
    return ["netem", "loss", _pct(p["percent"]), _pct(p.get("correlation") or 0)]


def netem_percent(verb: str) -> Callable[[Params], list[str]]:
    return lambda p: ["netem", verb, _pct(p["percent"])]


def tbf_args(rate: float) -> list[str]:
    burst = max(int(rate / 50), 4096)  # ~20 ms of data, at least a few full frames
    return ["tbf", "rate", f"{int(rate * 8)}bit", "burst", str(burst), "latency", "200ms"]


@dataclass(frozen=True)
class KernelRecipe:
    """How one fault type reaches the kernel. A recipe with a `qdisc` shapes the whole device
    (egress, no filters); one with `drop` is a firewall rule on the target's filters; one with
    both shapes only while `shape_if(params)` holds."""

    qdisc: Callable[[Params], list[str]] | None = None  # the root qdisc's `tc qdisc add` args
    drop: bool = False  # a firewall rule drops the matched packets
    sample: Callable[[Params], float] | None = None  # share of matched packets dropped; None: all
    shape_if: Callable[[Params], bool] | None = None  # with qdisc and drop: when to shape
    port: int | None = None  # a fixed port (DNS): any protocol to or from it, whatever is given

    def shapes(self, params: Params) -> bool:
        """tc on the root qdisc (True) or a firewall rule (False), for these parameters."""
        if self.qdisc is None:
            return False
        return not self.drop or (self.shape_if is not None and self.shape_if(params))

    def uses_netem(self, params: Params) -> bool:
        return self.shapes(params) and self.qdisc_args(params)[0] == "netem"

    def qdisc_args(self, params: Params) -> list[str]:
        assert self.qdisc is not None
        return self.qdisc(params)


RECIPES: Mapping[str, KernelRecipe] = {
    "network.latency": KernelRecipe(qdisc=netem_delay),
    "network.corruption": KernelRecipe(qdisc=netem_percent("corrupt")),
    "network.duplication": KernelRecipe(qdisc=netem_percent("duplicate")),
    "network.bandwidth": KernelRecipe(qdisc=lambda p: tbf_args(float(p["rate"]))),
    "network.partition": KernelRecipe(drop=True),
    # a correlated loss needs netem's state; plain loss is a sampled drop on the filters
    "network.loss": KernelRecipe(qdisc=netem_loss, drop=True, sample=lambda p: p["percent"],
                                 shape_if=lambda p: bool(p.get("correlation"))),
    "network.dns": KernelRecipe(drop=True, port=53),
}
FAULT_TYPES = tuple(RECIPES)


def recipe(fault: FaultSpec) -> KernelRecipe:
    return RECIPES[fault.type]


def filters_of(sel: Mapping[str, Any]) -> dict[str, Any]:
    return {k: sel.get(k) for k in ("host", "cidr", "port") if sel.get(k) is not None} | (
        {"protocol": sel["protocol"]} if sel.get("protocol") not in (None, "all") else {})


def _protocol_port(fault: FaultSpec, sel: Mapping[str, Any]) -> tuple[str, Any]:
    fixed = recipe(fault).port
    if fixed is not None:
        return "all", fixed
    return sel.get("protocol") or "all", sel.get("port")


def nft_matches(fault: FaultSpec, sel: Mapping[str, Any], hook: str) -> list[str]:
    """nftables match expressions (one rule each) for the target's filters on one hook."""
    ingress = hook == "input"
    base = [f'{"iifname" if ingress else "oifname"} "{sel["device"]}"']
    peer = "saddr" if ingress else "daddr"
    for key in ("host", "cidr"):
        if sel.get(key):
            net = ipaddress.ip_network(str(sel[key]), strict=False)
            base.append(f"{'ip' if net.version == 4 else 'ip6'} {peer} {net}")
    protocol, port = _protocol_port(fault, sel)
    if port is None:
        if protocol != "all":
            base.append(f"meta l4proto {protocol}")
        return [" ".join(base)]
    l4 = "{ tcp, udp }" if protocol in ("all", "icmp") else protocol
    return [" ".join([*base, f"meta l4proto {l4}", f"th {end} {port}"])
            for end in ("dport", "sport")]


def nft_table(table: str, fault: FaultSpec, sel: Mapping[str, Any]) -> str:
    verdict = "counter drop"
    sample = recipe(fault).sample
    share = sample(fault.params) if sample else 1.0
    if share < 1:  # all packets: numgen cannot say 100%
        verdict = f"numgen random mod 10000 < {round(share * 10000)} {verdict}"
    direction = sel.get("direction") or "both"
    chains = []
    for hook, name in (("input", "ingress"), ("output", "egress")):
        if direction not in ("both", name):
            continue
        rules = "\n".join(f"    {m} {verdict}" for m in nft_matches(fault, sel, hook))
        chains.append(f"  chain {name} {{\n    type filter hook {hook} priority raw; "
                      f"policy accept;\n{rules}\n  }}")
    body = "\n".join(chains)
    return f'table inet {table} {{\n  comment "chaos {fault.type} {fault.name}"\n{body}\n}}\n'


def ipt_rules(fault: FaultSpec, sel: Mapping[str, Any], hook: str) -> list[list[str]]:
    """iptables rule arguments (after `-A CHAIN`) for one hook: the fallback of nft_matches."""
    ingress = hook == "INPUT"
    base = ["-i" if ingress else "-o", str(sel["device"])]
    for key in ("host", "cidr"):
        if sel.get(key):
            net = ipaddress.ip_network(str(sel[key]), strict=False)
            if net.version != 4:
                raise PermissionDenied(f"{fault.name}: the iptables fallback handles IPv4 only",
                                       hint="install nftables (apt-get install nftables)")
            base += ["-s" if ingress else "-d", str(net)]
    tail = ["-m", "comment", "--comment", "chaos", "-j", "DROP"]
    sample = recipe(fault).sample
    if sample is not None:
        tail = ["-m", "statistic", "--mode", "random", "--probability",
                f"{sample(fault.params):.4f}", *tail]
    protocol, port = _protocol_port(fault, sel)
    if port is None:
        return [[*base, *(["-p", protocol] if protocol != "all" else []), *tail]]
    protocols = ("tcp", "udp") if protocol in ("all", "icmp") else (protocol,)
    return [[*base, "-p", proto, end, str(port), *tail]
            for proto in protocols for end in ("--dport", "--sport")]
