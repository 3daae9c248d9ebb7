"""Services declared by an experiment: started before it, stopped after it, restarted on demand.

Each service gets its own session (Ctrl-C in the terminal reaches the runner, which stops
services in order) and PR_SET_PDEATHSIG, so a killed runner does not leave them running. Output
goes to `service-NAME.log` next to the journal.

A service awaited on a tcp/http address of this host is refused when something already answers
there before it starts: its readiness check (and the run's probes) would measure that other
process. A service that exits on its own - before it is ready, or while the run holds it - is a
`service.exited` event and an error naming its exit code and log, never a missing target.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

from chaos.lifetime import die_with_parent
from chaos.adapters.local.clock import faketime_env
from chaos.errors import PortInUse, ServiceFailed
from chaos.model.experiment import Readiness, ServiceSpec
from chaos.runner.events import EventBus
from chaos.slo.probes import Probe


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when no process is left in it. Linux does not reuse a pid
    while a group of that id has members, so a group that just answered is still ours."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def local_address(ready: Readiness | None) -> tuple[str, int] | None:
    """The (host, port) a tcp/http readiness check connects to, when it is on this host."""
    if ready is None or ready.kind not in ("tcp", "http"):
        return None
    value = str(ready.spec["value"])
    try:
        if ready.kind == "http":
            url = urlsplit(value)
            host = url.hostname or ""
            port = url.port or (443 if url.scheme == "https" else 80)
        else:
            host, _, port_text = value.rpartition(":")
            host, port = host.strip("[]"), int(port_text)
    except ValueError:
        return None
    if host in ("localhost", ""):
        return "127.0.0.1", port
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None  # a name elsewhere: not ours to judge
    if address.is_loopback or address.is_unspecified or host in _own_addresses():
        return host, port
    return None


def _own_addresses() -> set[str]:
    import psutil  # the interfaces' addresses: only asked for a literal, non-loopback IP

    return {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs}


def port_holder(port: int) -> str:
    """Who listens on a TCP port, as `name, pid N`, where psutil can tell (root or our own)."""
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return ""
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return ""
            try:
                return f"{psutil.Process(conn.pid).name()}, pid {conn.pid}"
            except psutil.Error:
                return f"pid {conn.pid}"
    return ""


async def _accepts(host: str, port: int) -> bool:
    connect_to = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(connect_to, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


class Services:
    def __init__(self, specs: tuple[ServiceSpec, ...], out_dir: Path, bus: EventBus,
                 skewed: frozenset[str] = frozenset()) -> None:
        self.specs = {s.name: s for s in specs}
        self.skewed = skewed  # started under libfaketime, for time.skew (adapters.local.clock)
        self.out_dir = out_dir
        self.bus = bus
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.exited: dict[str, str] = {}  # service -> why it is gone, when it exited on its own
        self._stopping: set[str] = set()
        self._watchers: list[asyncio.Task[None]] = []

    def pid(self, name: str) -> int | None:
        """The service's pid; ServiceFailed when it exited on its own while the run held it."""
        if name in self.exited:
            raise ServiceFailed(self.exited[name])
        proc = self.processes.get(name)
        return proc.pid if proc is not None and proc.returncode is None else None

    def log_path(self, name: str) -> Path:
        return self.out_dir / f"service-{name}.log"

    async def start_all(self) -> None:
        for name in self.specs:
            await self.start(name)

    async def refuse_a_taken_address(self, spec: ServiceSpec) -> None:
        """Refuse to start a service whose readiness address already answers (see module doc).
        A container's port held by docker-proxy is caught here too: nothing of ours runs yet."""
        address = local_address(spec.ready)
        if address is None or not await _accepts(*address):
            return
        host, port = address
        holder = await asyncio.to_thread(port_holder, port)
        held = f" (held by {holder})" if holder else ""
        raise PortInUse(f"service {spec.name}: {host}:{port} already accepts connections before "
                        f"the service is started{held}; its readiness check and the run would "
                        f"measure that process instead. Stop it, or pick another port (e.g. "
                        f"`--var port={port + 1}` when the file takes its port from a var)")

    async def start(self, name: str) -> None:
        spec = self.specs[name]
        if name not in self.processes:  # a restart follows our own stop: the port is ours
            await self.refuse_a_taken_address(spec)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **spec.env}
        if name in self.skewed:
            try:
                env.update(faketime_env(self.out_dir / f"clock-{name}"))
            except OSError as exc:
                raise ServiceFailed(f"service {name}: cannot start it under libfaketime: "
                                    f"{exc}") from exc
        with open(self.log_path(name), "ab") as log:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *spec.run, cwd=spec.cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
                    stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                    preexec_fn=die_with_parent(),
                )
            except OSError as exc:
                raise ServiceFailed(f"service {name}: cannot run {spec.run[0]!r}: "
                                    f"{exc.strerror}") from exc
        self.processes[name] = proc
        self._stopping.discard(name)
        self.exited.pop(name, None)
        self.bus.emit("service.started", service=name, pid=proc.pid, argv=list(spec.run),
                      log=str(self.log_path(name)))
        await self._wait_ready(spec, proc)
        self._watchers.append(asyncio.create_task(self._watch(name, proc)))

    def _exited(self, name: str, proc: asyncio.subprocess.Process, when: str) -> str:
        """Record (as an event) that a service exited on its own; the sentence that says so."""
        why = (f"service {name} exited (code {proc.returncode}) {when}: "
               f"see {self.log_path(name)}")
        self.bus.emit("service.exited", service=name, returncode=proc.returncode,
                      ready=when != "before it was ready", log=str(self.log_path(name)))
        return why

    async def _watch(self, name: str, proc: asyncio.subprocess.Process) -> None:
        await proc.wait()
        if name not in self._stopping and self.processes.get(name) is proc:
            self.exited[name] = self._exited(name, proc, "while the run held it")

    async def _wait_ready(self, spec: ServiceSpec, proc: asyncio.subprocess.Process) -> None:
        started = time.monotonic()
        if spec.ready is None:
            self.bus.emit("service.ready", service=spec.name, after=0.0)
            return
        ready = spec.ready
        if ready.kind == "delay":
            await asyncio.sleep(float(ready.spec["value"]))
        else:
            value = ready.spec["value"]
            probe_spec = {"http": {"url": value, "timeout": 1.0},
                          "tcp": {"address": value, "timeout": 1.0},
                          "exec": {"run": value, "timeout": 5.0}}[ready.kind]
            probe = Probe(f"{spec.name}-ready", ready.kind, probe_spec)
            last = ""
            while True:
                if proc.returncode is not None:
                    why = self._exited(spec.name, proc, "before it was ready")
                    raise ServiceFailed(f"{why}; it ends: {self._tail(spec.name)}")
                sample = await probe.sample()
                if sample.ok:
                    break
                last = sample.detail
                if time.monotonic() - started > ready.timeout:
                    raise ServiceFailed(f"service {spec.name} was not ready within "
                                        f"{ready.timeout:g}s (last answer: {last}); "
                                        f"{self._output(spec.name)}")
                await asyncio.sleep(0.1)
        self.bus.emit("service.ready", service=spec.name,
                      after=round(time.monotonic() - started, 3))

    def _output(self, name: str) -> str:
        return f"its output ({self.log_path(name)}) ends: {self._tail(name)}"

    def _tail(self, name: str, lines: int = 5) -> str:
        try:
            text = self.log_path(name).read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no output)"
        return " | ".join(text[-lines:]) or "(no output)"

    async def stop(self, name: str, signal_name: str | None = None) -> None:
        proc = self.processes.get(name)
        if proc is None or proc.returncode is not None:
            return
        self._stopping.add(name)
        spec = self.specs[name]
        sig = signal.Signals["SIG" + (signal_name or spec.stop_signal)]
        # The service leads its own process group (start_new_session): signal the group, so
        # the processes it started stop with it, as they would on Ctrl-C in a terminal.
        _signal_group(proc.pid, signal.SIGCONT)  # a frozen process cannot handle SIGTERM
        _signal_group(proc.pid, sig)
        deadline = time.monotonic() + spec.stop_timeout
        try:
            await asyncio.wait_for(proc.wait(), spec.stop_timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        while (left := _signal_group(proc.pid, 0)) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # its children are still shutting down
        if left:
            _signal_group(proc.pid, signal.SIGKILL)  # stragglers: nothing outlives the run
        self.bus.emit("service.stopped", service=name, returncode=proc.returncode)

    async def restart(self, name: str, signal_name: str | None = None) -> None:
        await self.stop(name, signal_name)
        await self.start(name)

    async def stop_all(self) -> None:
        self._stopping.update(self.processes)
        for name in reversed(list(self.processes)):
            await self.stop(name)
        for watcher in self._watchers:
            watcher.cancel()
