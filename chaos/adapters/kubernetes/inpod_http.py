"""HTTP faults inside a pod: the fault proxy in the agent, and an nftables redirect to it.

The `hold` agent (chaos.adapters.kubernetes.inpod_agent) runs the HTTP fault proxy
(chaos.adapters.local.proxy, `protocol: http`) in its own event loop on a free port, gives it the
fault's rule, and redirects new TCP connections that arrive for the application's `port` to it:

    table ip chaos_<id> { chain prerouting { type nat hook prerouting priority dstnat;
        iifname != "lo" tcp dport PORT redirect to :PROXY } }

The proxy forwards to 127.0.0.1:PORT. Its own connection is made inside the pod, so it passes
the output hook, never prerouting's nat chain (loopback traffic is also excluded by name): it is
not redirected again. Connections open before the redirect stay direct (conntrack keeps their
route); new ones go through the proxy until the revert. IPv4 only: the proxy listens on 0.0.0.0.

The revert deletes the table first — new connections go straight to the application again —
and then ends the proxy, when this process runs it. The revert spec is plain data, the table's
name derived from the injection id, so `stop` in another container (the watchdog's, `chaos
recover --kubernetes`'s) deletes a table that a killed agent left behind; the proxy died with it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from chaos.adapters.base import Adapter, RevertOutcome, Scope, TargetRef
from chaos.adapters.kubernetes.ephemeral_spec import HTTP_FAULTS
from chaos.adapters.local.kernel import TABLE_PREFIX, run
from chaos.adapters.local.proxy import Proxy
from chaos.adapters.local.proxy_toxics import from_fault
from chaos.errors import FaultFailed, PermissionDenied, UsageError, truncate
from chaos.model.experiment import FaultSpec

FAMILY = "ip"
NFT_HINT = ("the agent needs nft (the image's nftables package) and NET_ADMIN in the pod, and "
            "the pod's kernel nat support (nf_nat): docs/kubernetes-inpod.md")


def redirect_table(table: str, port: int, proxy_port: int) -> str:
    """The nft script of the redirect (one table: deleting it is the whole revert)."""
    return (f"table {FAMILY} {table} {{\n"
            "  chain prerouting {\n"
            "    type nat hook prerouting priority dstnat; policy accept;\n"
            f'    iifname != "lo" tcp dport {port} redirect to :{proxy_port}\n'
            "  }\n}\n")


class InPodHttpProxy(Adapter):
    """http.* faults held by the agent: a proxy in this process plus the redirect to it."""

    name = "inpod.http"
    target_kind = "pods"
    fault_types = HTTP_FAULTS
    abstract = True  # the agent's own, never in a registry

    def __init__(self) -> None:
        self.proxy: Proxy | None = None

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        port = fault.target.selector.get("port")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise UsageError(f"{fault.type} in a pod needs the application's port "
                             f"(target.pods.port), got {port!r}")
        return [TargetRef("pods", f"port {port}", {"port": port}, lock_key=f"http:{port}")]

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        port = int(fault.target.selector.get("port") or target.identity.get("port") or 0)
        return {"nft": {"family": FAMILY, "table": TABLE_PREFIX + "http"}, "port": port}

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        port = int(spec["port"])
        proxy = Proxy("0.0.0.0:0", f"127.0.0.1:{port}", seed=scope.seed, protocol="http")
        try:
            await proxy.add(from_fault(str(spec["nft"]["table"]), fault.type, fault.params,
                                       "both", 1.0, time.time() + fault.duration))
            await proxy.start()
        except (ValueError, OSError) as exc:
            await proxy.stop()
            raise FaultFailed(f"the in-pod HTTP proxy for {fault.name} did not start: {exc}")
        self.proxy = proxy
        code, out = await run(["nft", "-f", "-"], stdin=redirect_table(
            str(spec["nft"]["table"]), port, proxy.listen[1]))
        if code != 0:
            self.proxy = None
            await proxy.stop()
            raise PermissionDenied(f"nft refused the redirect of port {port} for {fault.name}: "
                                   f"{truncate(out, 200)}", hint=NFT_HINT)
        return {**spec, "proxy_port": proxy.listen[1]}

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        table = str(spec["nft"]["table"])
        outcome: RevertOutcome = "gone"
        if table.startswith(TABLE_PREFIX):
            family = str(spec["nft"].get("family", FAMILY))
            code, _ = await run(["nft", "list", "table", family, table])
            if code == 0:
                code, out = await run(["nft", "delete", "table", family, table])
                if code != 0:
                    raise FaultFailed(f"nft could not delete table {table}: {truncate(out, 200)}")
                outcome = "reverted"
        if self.proxy is not None:  # after the redirect: no new connection reaches it now
            proxy, self.proxy = self.proxy, None
            await proxy.stop()
            outcome = "reverted"
        return outcome
