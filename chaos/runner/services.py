"""Services declared by an experiment: started before it, stopped after it, restarted on demand.

Each service gets its own session (Ctrl-C in the terminal reaches the runner, which stops
services in order) and PR_SET_PDEATHSIG, so a killed runner does not leave them running. Output
goes to `service-NAME.log` next to the journal.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from chaos.lifetime import die_with_parent
from chaos.adapters.local.clock import faketime_env
from chaos.errors import ServiceFailed
from chaos.model.experiment import ServiceSpec
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


class Services:
    def __init__(self, specs: tuple[ServiceSpec, ...], out_dir: Path, bus: EventBus,
                 skewed: frozenset[str] = frozenset()) -> None:
        self.specs = {s.name: s for s in specs}
        self.skewed = skewed  # started under libfaketime, for time.skew (adapters.local.clock)
        self.out_dir = out_dir
        self.bus = bus
        self.processes: dict[str, asyncio.subprocess.Process] = {}

    def pid(self, name: str) -> int | None:
        proc = self.processes.get(name)
        return proc.pid if proc is not None and proc.returncode is None else None

    def log_path(self, name: str) -> Path:
        return self.out_dir / f"service-{name}.log"

    async def start_all(self) -> None:
        for name in self.specs:
            await self.start(name)

    async def start(self, name: str) -> None:
        spec = self.specs[name]
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
        self.bus.emit("service.started", service=name, pid=proc.pid, argv=list(spec.run),
                      log=str(self.log_path(name)))
        await self._wait_ready(spec, proc)

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
                    raise ServiceFailed(f"service {spec.name} exited with code {proc.returncode} "
                                        f"before it was ready; {self._output(spec.name)}")
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
        for name in reversed(list(self.processes)):
            await self.stop(name)
