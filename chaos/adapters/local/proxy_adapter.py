"""The proxy adapter: network faults as toxics on a userspace TCP fault proxy (no privileges).

A fault on `target: {proxy: {listen, upstream}}` becomes one toxic on the proxy serving
`listen`: a running one if there is one (`chaos proxy`, or a proxy declared as a service, which
then lives for the whole run), otherwise one started for the fault's duration. The proxy is a
separate process (it dies with the runner and at its own deadline), so the revert spec — the
control socket and the toxic id — lets the watchdog take the toxic off from another process.
Each toxic also expires inside the proxy, so even a proxy outliving runner and watchdog cleans
itself up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from chaos.adapters.base import Adapter, RevertOutcome, RevertSpec, Scope, TargetRef
from chaos.adapters.local.process import same_process
from chaos.adapters.local.proxy import split_address
from chaos.adapters.local.proxy_control import (
    ProxyGone,
    control_path,
    locator_path,
    read_locator,
    request,
)
from chaos.adapters.local.proxy_toxics import FAULT_KINDS, from_fault, per_request
from chaos.errors import FaultFailed, TargetNotFound
from chaos.lifetime import die_with_parent
from chaos.model.experiment import FaultSpec

NAME = "local.proxy"
START_TIMEOUT = 10.0
UPSTREAM_TIMEOUT = 2.0
REVERT_ATTEMPTS = 3


def grace(duration: float) -> float:
    """How long past a fault's end its toxic (and a proxy started for it) may live at most."""
    return 5.0 + 0.1 * duration


def protocol_of(fault: FaultSpec) -> str:
    """What the proxy must speak: as the target says, else what the fault type needs."""
    given = fault.target.selector.get("protocol")
    return str(given) if given else ("http" if per_request(fault.type) else "tcp")


def running_proxy(listen: str) -> dict[str, Any] | None:
    """The locator of a live proxy serving `listen`, or None."""
    found = read_locator(listen)
    if found is None or same_process(int(found["pid"]), float(found["create_time"])) is None:
        return None
    return found


async def check_upstream(upstream: str) -> None:
    host, port = split_address(upstream)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), UPSTREAM_TIMEOUT)
    except (TimeoutError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or "no answer"
        raise TargetNotFound(f"the proxy's upstream {upstream} is unreachable ({reason})",
                             hint="start the upstream service first, or fix "
                                  "target.proxy.upstream") from None
    writer.close()


@dataclass(frozen=True)
class ProxySpec(RevertSpec):
    """A proxy fault's revert spec: the proxy (listen address, control socket), the toxic's
    id, and the proxy process chaos started for it, if it did (ended once no toxic is left)."""

    listen: str = ""
    upstream: str = ""
    protocol: str = "tcp"
    control: str = ""
    upstream_tls: bool = False
    toxic: str = ""
    owned: Mapping[str, Any] | None = None  # pid + create time

    def to_json(self) -> dict[str, Any]:
        return {**self.header(), "listen": self.listen, "upstream": self.upstream,
                "protocol": self.protocol, "control": self.control,
                "upstream_tls": self.upstream_tls, "toxic": self.toxic,
                "owned": dict(self.owned) if self.owned is not None else None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        cls.check_version(data)
        owned = data.get("owned")
        return cls(str(data["adapter"]), str(data.get("listen", "")),
                   str(data.get("upstream", "")), str(data.get("protocol", "tcp")),
                   str(data["control"]), bool(data.get("upstream_tls")), str(data["toxic"]),
                   dict(owned) if owned else None)


class ProxyAdapter(Adapter):
    name = NAME
    target_kind = "proxy"
    fault_types = tuple(FAULT_KINDS)

    def __init__(self) -> None:
        self._spawn_lock: asyncio.Lock | None = None
        self._children: list[asyncio.subprocess.Process] = []

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        sel = fault.target.selector
        listen, upstream = str(sel["listen"]), str(sel["upstream"])
        for field, value in (("listen", listen), ("upstream", upstream)):
            try:
                split_address(value)
            except ValueError as exc:
                raise TargetNotFound(f"{fault.name}: target.proxy.{field}: {exc}") from None
        running = running_proxy(listen)
        protocol = protocol_of(fault)
        how = f"running, pid {running['pid']}" if running else "started by chaos"
        if running and running.get("upstream") != upstream:
            raise TargetNotFound(f"{fault.name}: the proxy on {listen} forwards to "
                                 f"{running.get('upstream')}, not {upstream}",
                                 hint="fix target.proxy.upstream or use another listen port")
        upstream_tls = bool(fault.target.selector.get("upstream_tls"))
        if upstream_tls and protocol != "http":
            raise TargetNotFound(f"{fault.name}: target.proxy.upstream_tls: a TCP proxy relays "
                                 "TLS as it is; upstream_tls is for protocol: http",
                                 hint="remove upstream_tls, or use HTTP faults") from None
        if running and bool(running.get("upstream_tls")) != upstream_tls:
            raise TargetNotFound(f"{fault.name}: the proxy on {listen} "
                                 f"{'speaks' if running.get('upstream_tls') else 'does not speak'}"
                                 " TLS to its upstream, unlike target.proxy.upstream_tls",
                                 hint="fix upstream_tls or use another listen port")
        if running and running.get("protocol", "tcp") != protocol:
            raise TargetNotFound(f"{fault.name}: the proxy on {listen} speaks "
                                 f"{running.get('protocol', 'tcp')}, {fault.type} needs "
                                 f"{protocol}", hint="start a proxy of that protocol on another "
                                 "listen port")
        label = f"{protocol} proxy" if protocol != "tcp" else "proxy"
        return [TargetRef(kind="proxy", label=f"{label} {listen} -> {upstream} ({how})",
                          identity={"listen": listen, "upstream": upstream,
                                    "protocol": protocol, "upstream_tls": upstream_tls},
                          lock_key=f"proxy:{listen}:{fault.name}")]

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        listen = str(target.identity["listen"])
        running = running_proxy(listen)
        control = running["control"] if running else str(control_path(listen))
        return ProxySpec(NAME, listen, str(target.identity["upstream"]),
                         str(target.identity.get("protocol", "tcp")), control,
                         bool(target.identity.get("upstream_tls")),
                         f"{fault.type.split('.')[1]}-{uuid.uuid4().hex[:10]}").to_json()

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        sel, typed = fault.target.selector, ProxySpec.from_json(spec)
        await check_upstream(typed.upstream)
        expires = time.time() + fault.duration + grace(fault.duration)
        if self._spawn_lock is None:
            self._spawn_lock = asyncio.Lock()
        async with self._spawn_lock:
            running = running_proxy(typed.listen)
            if running is None:
                typed = dataclasses.replace(typed, owned=await self._start(typed, expires))
            elif running["control"] != typed.control:
                typed = dataclasses.replace(typed, control=str(running["control"]))
        params = {**fault.params, "seed": f"{scope.seed}:{fault.name}"} if per_request(
            fault.type) else fault.params
        toxic = from_fault(typed.toxic, fault.type, params,
                           str(sel.get("direction") or "downstream"),
                           1.0 if sel.get("toxicity") is None else float(sel["toxicity"]),
                           expires)
        try:
            await request(typed.control, {"op": "add", "toxic": toxic.as_dict()})
        except (ProxyGone, OSError, RuntimeError) as exc:
            if typed.owned:  # nothing half-applied: a proxy started for this fault goes too
                await self._stop(int(typed.owned["pid"]), float(typed.owned["create_time"]))
            raise FaultFailed(f"the proxy on {typed.listen} refused the fault: {exc}") from exc
        return typed.to_json()

    async def _start(self, spec: ProxySpec, until: float) -> dict[str, Any]:
        argv = [sys.executable, "-m", "chaos.adapters.local.proxy_control",
                "--listen", spec.listen, "--upstream", spec.upstream,
                "--control", spec.control, "--protocol", spec.protocol,
                *(["--upstream-tls"] if spec.upstream_tls else []),
                "--locator", str(locator_path(spec.listen)),
                "--until", f"{until:.3f}"]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, preexec_fn=die_with_parent())
        assert proc.stdout is not None
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)).decode()
        except TimeoutError:
            line = ""
        if not line.startswith("ready"):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            reason = line.removeprefix("error ").strip() or "it did not start in time"
            raise TargetNotFound(f"could not start the fault proxy: {reason}",
                                 hint="pick a free port for target.proxy.listen")
        self._children.append(proc)
        import psutil

        return {"pid": proc.pid, "create_time": psutil.Process(proc.pid).create_time()}

    async def revert(self, data: Mapping[str, Any]) -> RevertOutcome:
        spec = ProxySpec.from_json(data)
        outcome: RevertOutcome = "gone"
        remaining = 0
        for attempt in range(REVERT_ATTEMPTS):  # a proxy that is busy exiting may not answer
            try:
                answer = await request(spec.control, {"op": "remove", "id": spec.toxic})
                outcome = "reverted" if answer.get("removed") else "gone"
                remaining = len((await request(spec.control, {"op": "list"}))["toxics"])
                break
            except ProxyGone:
                break
            except TimeoutError:
                if attempt == REVERT_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.5)
        owned = spec.owned
        if owned and not remaining:
            await self._stop(int(owned["pid"]), float(owned["create_time"]))
        return outcome

    async def _stop(self, pid: int, create_time: float) -> None:
        """End a proxy this adapter started (its toxics are gone: ending it is harmless)."""
        if same_process(pid, create_time) is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(60):
            if same_process(pid, create_time) is None:
                break
            await asyncio.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in [p for p in self._children if p.pid == pid]:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 1)
            self._children.remove(proc)
