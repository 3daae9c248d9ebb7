"""The kernel adapter: network faults with tc (tbf, netem) and nftables, on a device of this host
or inside a named network namespace. Needs root or CAP_NET_ADMIN.

It never deletes what it did not create. Shaping faults (bandwidth: tbf; latency, corruption,
duplication, correlated loss: netem) take a device's root qdisc only while that root is the
kernel's default (handle 0:), under the handle `ca05:` that marks it as ours; the revert deletes
the root only while it still carries that handle, which brings the default back exactly. A
device with a configured root qdisc is refused rather than replaced, because its classes and
filters could not be restored exactly. Filtering faults (partition, loss, DNS) live in an
nftables table of their own, `inet chaos_<id>`, and the revert deletes that table only (where
nft is missing: iptables chains `CHAOS-<id>-I/-O` and their jumps, the same way). Missing
tools, capabilities or kernel modules (this matters for sch_netem, absent from some kernels) are
reported before anything is touched, with the proxy adapter as the way out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import os
import platform
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from chaos.adapters.base import Adapter, RevertOutcome, RevertSpec, Scope, TargetRef
from chaos.adapters.local.kernel_recipes import (
    FAULT_TYPES,
    filters_of,
    ipt_rules,
    nft_table,
    recipe,
)
from chaos.errors import FaultFailed, GuardRefused, PermissionDenied, TargetNotFound, truncate
from chaos.model.experiment import FaultSpec

HANDLE = "ca05:"  # our root qdisc; `tc qdisc show` makes chaos's shaping visible
TABLE_PREFIX = "chaos_"
IPT_PREFIX = "CHAOS-"  # iptables fallback: chains CHAOS-<id>-I / -O, jumped to from INPUT/OUTPUT
TIMEOUT = 10.0
CAP_NET_ADMIN = 12
PROXY_HINT = ("use the proxy adapter instead (no privileges, no kernel modules): "
              "target: {proxy: {listen: 127.0.0.1:PORT, upstream: HOST:PORT}}")


class Gone(Exception):
    """The namespace or device no longer exists."""


async def run(argv: Sequence[str], stdin: str | None = None) -> tuple[int, str]:
    """Run a tool (argv, never a shell) with a timeout; (exit code, stdout+stderr)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else
            asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
    except FileNotFoundError as exc:
        raise PermissionDenied(f"{argv[0]} is not installed", hint=PROXY_HINT) from exc
    try:
        out, _ = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None),
                                        TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return 124, f"{argv[0]} timed out after {TIMEOUT:g}s"
    return int(proc.returncode or 0), out.decode(errors="replace").strip()


def in_netns(netns: str | None, argv: list[str]) -> list[str]:
    """argv run inside a namespace: a name (`ip netns`) or a path (a container's
    /proc/PID/ns/net, entered with nsenter)."""
    if netns and netns.startswith("/"):
        return ["nsenter", f"--net={netns}", "--", *argv]
    return ["ip", "netns", "exec", netns, *argv] if netns else argv


def has_net_admin() -> bool:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except (OSError, ValueError):
        pass
    return os.geteuid() == 0


def netem_available() -> bool:
    """sch_netem is loaded, built in, or loadable for the running kernel."""
    if Path("/sys/module/sch_netem").exists():
        return True
    modules = Path("/lib/modules") / platform.release()
    try:
        if "sch_netem" in (modules / "modules.builtin").read_text():
            return True
    except OSError:
        pass
    return any(modules.glob("kernel/net/sched/sch_netem.ko*"))


@dataclass(frozen=True)
class KernelSpec(RevertSpec):
    """A kernel fault's revert spec: where, and which of chaos's own objects to remove: the
    root qdisc with our handle (tc), an nftables table, or iptables chains (hook -> chain)."""

    netns: str | None = None
    device: str = ""
    tool: Literal["tc", "nft", "iptables"] = "nft"
    original: Mapping[str, Any] | None = None  # tc: the root qdisc chaos took the place of
    table: str = ""  # nft
    chains: Mapping[str, str] = field(default_factory=dict)  # iptables

    def to_json(self) -> dict[str, Any]:
        data = {**self.header(), "netns": self.netns, "device": self.device}
        if self.tool == "tc":
            tc = {"handle": HANDLE} | ({"original": dict(self.original)}
                                       if self.original is not None else {})
            return {**data, "tc": tc}
        if self.tool == "iptables":
            return {**data, "ipt": dict(self.chains)}
        return {**data, "nft": {"family": "inet", "table": self.table}}

    def named(self, injection_id: str) -> KernelSpec:
        """The same spec with names derived from an id instead of random ones, so a second
        process (the in-pod agent's `stop`) finds what the first created."""
        if self.tool == "nft":
            return dataclasses.replace(self, table=TABLE_PREFIX + injection_id)
        if self.tool == "iptables":
            chain = IPT_PREFIX + injection_id[:10]
            return dataclasses.replace(self, chains={"INPUT": chain + "-I",
                                                     "OUTPUT": chain + "-O"})
        return self

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        cls.check_version(data)
        where = cls(str(data["adapter"]), data.get("netns"), str(data["device"]))
        if "tc" in data:  # version 1 says which tool by the key it fills
            return dataclasses.replace(where, tool="tc", original=data["tc"].get("original"))
        if "ipt" in data:
            return dataclasses.replace(where, tool="iptables", chains=dict(data["ipt"]))
        return dataclasses.replace(where, table=str(data["nft"]["table"]))


class KernelAdapter(Adapter):
    abstract = True
    fault_types = FAULT_TYPES
    netns_field: ClassVar[str | None] = None

    def _where(self, sel: Mapping[str, Any]) -> tuple[str | None, str]:
        return (str(sel[self.netns_field]) if self.netns_field else None), str(sel["device"])

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        sel = fault.target.selector
        netns, device = self._where(sel)
        self.check_request(fault, sel)
        if not has_net_admin():
            raise PermissionDenied(f"{fault.name}: {fault.type} on a {self.target_kind} needs "
                                   "root or CAP_NET_ADMIN", hint=PROXY_HINT)
        shaping = recipe(fault).shapes(fault.params)
        tool = "tc" if shaping else firewall()
        if shutil.which(tool) is None:
            package = {"tc": "iproute2", "nft": "nftables"}.get(tool, tool)
            raise PermissionDenied(f"{fault.name}: `{tool}` is not installed",
                                   hint=f"install {package} (apt-get install {package}), or "
                                        + PROXY_HINT)
        if recipe(fault).uses_netem(fault.params) and not netem_available():
            raise PermissionDenied(f"{fault.name}: {fault.type} needs tc netem, and this kernel "
                                   f"({platform.release()}) has no sch_netem module",
                                   hint=PROXY_HINT)
        if netns and not Path("/run/netns", netns).exists():
            raise TargetNotFound(f"{fault.name}: no network namespace named {netns!r}",
                                 hint="`ip netns list` shows them; create it first")
        code, out = await run(in_netns(netns, ["ip", "link", "show", "dev", device]))
        if code != 0:
            where = f" in namespace {netns}" if netns else ""
            raise TargetNotFound(f"{fault.name}: no network device {device!r}{where}: "
                                 f"{truncate(out, 120)}")
        where = f"{netns}/{device}" if netns else device
        if shaping:
            check_root(await root_qdisc(netns, device), where)
        lock = f"tc:{where}" if shaping else f"nft:{where}:{fault.name}"
        label = f"{self.target_kind} {where}" + (f" ({_describe(filters_of(sel))})"
                                                 if filters_of(sel) else "")
        return [TargetRef(kind=self.target_kind, label=label,
                          identity={"netns": netns, "device": device, **filters_of(sel)},
                          lock_key=lock)]

    def check_request(self, fault: FaultSpec, sel: Mapping[str, Any]) -> None:
        shaping = recipe(fault).shapes(fault.params)
        if shaping and filters_of(sel):
            raise TargetNotFound(f"{fault.name}: {fault.type} shapes the whole device; it "
                                 f"cannot filter by {', '.join(filters_of(sel))}",
                                 hint="remove the filters, or use the proxy adapter for one "
                                      "service")
        if shaping and sel.get("direction") == "ingress":
            raise TargetNotFound(f"{fault.name}: {fault.type} shapes traffic leaving the "
                                 "device (egress) only",
                                 hint="apply it to the peer's device, or set direction: egress")
        for key in ("host", "cidr"):
            if sel.get(key):
                try:
                    ipaddress.ip_network(str(sel[key]), strict=False)
                except ValueError:
                    raise TargetNotFound(f"{fault.name}: target.{self.target_kind}.{key}: "
                                         f"expected an IP address or network, got "
                                         f"{sel[key]!r}") from None

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        return self.prepare_spec(fault, target).to_json()

    def prepare_spec(self, fault: FaultSpec, target: TargetRef) -> KernelSpec:
        where = KernelSpec(self.name, target.identity["netns"], target.identity["device"])
        if recipe(fault).shapes(fault.params):
            return dataclasses.replace(where, tool="tc")
        if firewall() == "iptables":
            chain = IPT_PREFIX + uuid.uuid4().hex[:10]
            return dataclasses.replace(where, tool="iptables",
                                       chains={"INPUT": chain + "-I", "OUTPUT": chain + "-O"})
        return dataclasses.replace(where, table=TABLE_PREFIX + uuid.uuid4().hex[:12])

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        return (await self.inject_spec(fault, KernelSpec.from_json(spec))).to_json()

    async def inject_spec(self, fault: FaultSpec, spec: KernelSpec) -> KernelSpec:
        netns, device = spec.netns, spec.device
        if spec.tool == "tc":
            original = check_root(await root_qdisc(netns, device), device)
            code, out = await run(in_netns(netns, [
                "tc", "qdisc", "add", "dev", device, "root", "handle", HANDLE,
                *recipe(fault).qdisc_args(fault.params)]))
            if code != 0:
                raise _tc_error(fault, out)
            return dataclasses.replace(spec, original=original)
        if spec.tool == "iptables":
            await ipt_inject(fault, spec)
            return spec
        table = nft_table(spec.table, fault, fault.target.selector)
        code, out = await run(in_netns(netns, ["nft", "-f", "-"]), stdin=table)
        if code != 0:
            raise FaultFailed(f"nft refused the rules for {fault.name}: {truncate(out, 200)}",
                              hint=PROXY_HINT)
        return spec

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        return await revert_kernel(KernelSpec.from_json(spec))


async def revert_kernel(spec: KernelSpec) -> RevertOutcome:
    netns, device = spec.netns, spec.device
    if netns and not Path("/run/netns", netns).exists():
        return "gone"
    if spec.tool == "tc":
        try:
            current = await root_qdisc(netns, device)
        except Gone:
            return "gone"
        if current.get("handle") != HANDLE:
            return "gone"  # not ours (any more): leave it alone
        code, out = await run(in_netns(netns, ["tc", "qdisc", "del", "dev", device, "root",
                                               "handle", HANDLE]))
        if code != 0 and (await root_qdisc(netns, device)).get("handle") == HANDLE:
            raise FaultFailed(f"tc could not remove chaos's qdisc from {device}: "
                              f"{truncate(out, 200)}")
        return "reverted"
    if spec.tool == "iptables":
        return await ipt_revert(netns, spec.chains)
    if not spec.table.startswith(TABLE_PREFIX):
        return "nothing"
    code, _ = await run(in_netns(netns, ["nft", "list", "table", "inet", spec.table]))
    if code != 0:
        return "gone"
    code, out = await run(in_netns(netns, ["nft", "delete", "table", "inet", spec.table]))
    if code != 0:
        raise FaultFailed(f"nft could not delete table {spec.table}: {truncate(out, 200)}")
    return "reverted"


def firewall() -> str:
    """nftables where `nft` is installed, else iptables; CHAOS_FIREWALL=nft|iptables chooses."""
    choice = os.environ.get("CHAOS_FIREWALL", "").strip().lower()
    if choice in ("nft", "iptables"):
        return choice
    return "nft" if shutil.which("nft") or not shutil.which("iptables") else "iptables"


async def ipt_inject(fault: FaultSpec, spec: KernelSpec) -> None:
    """Our own chains, one per hook, jumped to from INPUT/OUTPUT; undone at once on failure."""
    netns, direction = spec.netns, fault.target.selector.get("direction") or "both"
    for hook, chain in spec.chains.items():
        if direction not in ("both", "ingress" if hook == "INPUT" else "egress"):
            continue
        steps = [["-N", chain]] + [["-A", chain, *rule]
                                   for rule in ipt_rules(fault, fault.target.selector, hook)]
        steps.append(["-I", hook, "1", "-m", "comment", "--comment", "chaos", "-j", chain])
        for step in steps:
            code, out = await run(in_netns(netns, ["iptables", "-w", "5", *step]))
            if code != 0:
                await ipt_revert(netns, spec.chains)
                raise FaultFailed(f"iptables refused the rules for {fault.name}: "
                                  f"{truncate(out, 200)}", hint=PROXY_HINT)


async def ipt_revert(netns: str | None, chains: Mapping[str, str]) -> RevertOutcome:
    found = False
    for hook, chain in chains.items():
        if not chain.startswith(IPT_PREFIX):
            continue
        code, _ = await run(in_netns(netns, ["iptables", "-w", "5", "-S", chain]))
        if code != 0:
            continue
        found = True
        jump = ["-m", "comment", "--comment", "chaos", "-j", chain]
        for _ in range(10):  # bounded: our jump is inserted once per injection
            code, _ = await run(in_netns(netns, ["iptables", "-w", "5", "-D", hook, *jump]))
            if code != 0:
                break
        for step in (["-F", chain], ["-X", chain]):
            code, out = await run(in_netns(netns, ["iptables", "-w", "5", *step]))
            if code != 0:
                raise FaultFailed(f"iptables could not remove chain {chain}: "
                                  f"{truncate(out, 200)}")
    return "reverted" if found else "gone"


async def root_qdisc(netns: str | None, device: str) -> dict[str, Any]:
    code, out = await run(in_netns(netns, ["tc", "-j", "qdisc", "show", "dev", device]))
    if code != 0:
        raise Gone(out)
    try:
        qdiscs = json.loads(out or "[]")
    except ValueError:
        raise FaultFailed(f"cannot read tc's qdisc list for {device}: {truncate(out, 120)}")
    root: dict[str, Any] = next((q for q in qdiscs if q.get("root")), {})
    return {"kind": root.get("kind"), "handle": root.get("handle")}


def check_root(root: dict[str, Any], where: str) -> dict[str, Any]:
    """The root qdisc, if chaos may take its place (the kernel's default); refuse otherwise."""
    if root.get("handle") == HANDLE:
        raise GuardRefused(f"another chaos fault already shapes {where} (root qdisc {HANDLE})",
                           hint="run shaping faults on one device one after another")
    if root.get("handle") not in ("0:", None):
        raise GuardRefused(f"{where} has a configured root qdisc ({root.get('kind')} "
                           f"{root.get('handle')}) that chaos did not create; chaos will not "
                           "replace what it cannot restore exactly",
                           hint="shape another device (e.g. the peer's), or " + PROXY_HINT)
    return root


def _tc_error(fault: FaultSpec, out: str) -> FaultFailed | PermissionDenied:
    if "unknown" in out.lower() or "no such file" in out.lower():
        return PermissionDenied(f"{fault.name}: the kernel lacks the qdisc {fault.type} needs: "
                                f"{truncate(out, 160)}", hint=PROXY_HINT)
    return FaultFailed(f"tc refused {fault.name}: {truncate(out, 200)}", hint=PROXY_HINT)


def _describe(filters: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in filters.items())


class InterfaceAdapter(KernelAdapter):
    abstract = False
    name = "local.kernel"
    target_kind = "interface"


class NetnsAdapter(KernelAdapter):
    abstract = False
    name = "local.kernel.netns"
    target_kind = "netns"
    created_by_services = True  # a setup service may make the namespace (`ip netns add`)
    netns_field = "name"
