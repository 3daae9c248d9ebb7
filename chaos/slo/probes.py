"""Probes: small questions asked of the system, each answering ok / not ok and a latency.

    http     GET (or any method) a URL; ok when the status matches and the body matches a regex
    tcp      connect to host:port
    exec     run a command (argv, never a shell); ok when the exit code (and stdout) match
    process  a process matching a selector is alive
    pods / deployment   Kubernetes: enough Ready pods / available replicas
                        (chaos.adapters.kubernetes.probes, imported when first sampled)

Every probe has a timeout and is cancellable at any await, so a signal or a guardrail never waits
for a slow probe. A full open-model traffic generator is the SLO engine's job (chaos.slo.traffic);
probes are for simple steady-state questions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chaos.lifetime import die_with_parent
from chaos.errors import ProbeError, TargetNotFound
from chaos.model.experiment import ProbeSpec
from chaos.slo.checks import Sample
from chaos.slo.http_client import NotHttp, fetch

EXEC_REAP_TIMEOUT = 2.0  # after killing an exec probe's group, wait this long for its pipes


Runner = Callable[[Mapping[str, Any]], Awaitable[tuple[bool, str]]]


def _required(spec: Mapping[str, Any], key: str, kind: str) -> Any:
    if spec.get(key) is None:
        raise ProbeError(f"{kind} probe needs `{key}`")
    return spec[key]


async def _http(spec: Mapping[str, Any]) -> tuple[bool, str]:
    url = str(_required(spec, "url", "http"))
    method = str(spec.get("method") or "GET")
    try:
        status, data = await fetch(url, method=method, headers=spec.get("headers"),
                                   body=(spec.get("body") or "").encode(),
                                   verify_tls=spec.get("verify_tls") is not False)
    except NotHttp as exc:
        return False, str(exc)
    wanted = spec.get("status")
    if (status not in wanted) if wanted else not 200 <= status < 300:
        return False, f"HTTP {status}"
    pattern = spec.get("expect_body")
    if pattern and not re.search(pattern, data.decode("utf-8", "replace")):
        return False, f"HTTP {status}, body does not match {pattern!r}"
    return True, f"HTTP {status}"


async def _tcp(spec: Mapping[str, Any]) -> tuple[bool, str]:
    host, _, port = str(_required(spec, "address", "tcp")).rpartition(":")
    _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    writer.close()
    return True, "connected"


async def _exec(spec: Mapping[str, Any]) -> tuple[bool, str]:
    argv = list(_required(spec, "run", "exec"))
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, preexec_fn=die_with_parent(signal.SIGKILL),
            start_new_session=True)  # its own process group: a timeout kills its children too
    except OSError as exc:
        raise ProbeError(f"cannot run {argv[0]}: {exc.strerror}") from exc
    try:
        out, _ = await proc.communicate()
    finally:
        # Finished, timed out or cancelled: never leave the command or its children behind. A
        # child holding stdout would otherwise keep communicate() and wait() blocked past the
        # timeout (asyncio waits for the pipes to close, not only for the process to exit).
        _kill_group(proc.pid)
        if proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), EXEC_REAP_TIMEOUT)
    code = spec.get("exit_code", 0) or 0
    if proc.returncode != code:
        return False, f"exit code {proc.returncode}"
    pattern = spec.get("stdout")
    if pattern and not re.search(pattern, out.decode("utf-8", "replace")):
        return False, f"stdout does not match {pattern!r}"
    return True, f"exit code {proc.returncode}"


def _kill_group(pgid: int) -> None:
    # The group outlives its leader while members live, and Linux does not reuse a pid still in
    # use as a process group id, so this never hits a stranger.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def _process(spec: Mapping[str, Any]) -> tuple[bool, str]:
    from chaos.adapters.local.process import find_processes

    if spec.get("cmdline") is not None:
        try:
            re.compile(spec["cmdline"])
        except re.error as exc:
            raise ProbeError(f"process probe: cmdline is not a valid regular expression: "
                             f"{exc}") from None
    try:
        found = await asyncio.to_thread(find_processes, spec)
    except TargetNotFound as exc:  # the pidfile is gone or empty: daemons remove it as they die
        return False, str(exc)
    running = [p for p in found if _running(p)]
    return (True, f"{len(running)} running") if running else (False, "no running process")


def _running(proc: Any) -> bool:
    import psutil

    try:
        return proc.status() not in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


async def _pods(spec: Mapping[str, Any]) -> tuple[bool, str]:
    from chaos.adapters.kubernetes.probes import ready_pods

    return await ready_pods(spec, spec.get("kubernetes") or {})


async def _deployment(spec: Mapping[str, Any]) -> tuple[bool, str]:
    from chaos.adapters.kubernetes.probes import available_replicas

    return await available_replicas(spec, spec.get("kubernetes") or {})


RUNNERS: dict[str, Runner] = {"http": _http, "tcp": _tcp, "exec": _exec, "process": _process,
                              "pods": _pods, "deployment": _deployment}
DEFAULT_TIMEOUTS = {"http": 1.0, "tcp": 1.0, "exec": 5.0, "process": 2.0, "pods": 5.0,
                    "deployment": 5.0}
KUBERNETES = ("pods", "deployment")  # their spec carries the experiment's `kubernetes:` section


@dataclass(frozen=True)
class Probe:
    name: str
    kind: str
    spec: Mapping[str, Any]

    @classmethod
    def from_spec(cls, spec: ProbeSpec) -> Probe:
        if spec.kind in KUBERNETES:
            return cls(spec.name, spec.kind, {**spec.spec, "kubernetes": spec.kubernetes})
        return cls(spec.name, spec.kind, spec.spec)

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeout") or DEFAULT_TIMEOUTS[self.kind])

    async def sample(self, at: float | None = None) -> Sample:
        """Ask once. `at` is the intended send time (time.monotonic(); default now): the latency
        and the timeout count from it, so a late sampler cannot hide a slow answer. A timed-out
        sample's latency is unknown, greater than the timeout: it is recorded as the timeout
        with `timed_out` set, and latency percentiles that fall on it fail."""
        intended = time.monotonic() if at is None else at
        timed_out = False
        try:
            async with asyncio.timeout(max(intended + self.timeout - time.monotonic(), 0.0)):
                ok, detail = await RUNNERS[self.kind](self.spec)
        except TimeoutError:
            ok, detail, timed_out = False, f"no answer within {self.timeout:g}s", True
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:  # SSLError: OSError
            # ValueError: a malformed answer (an over-long header line, a bad chunk size)
            ok, detail = False, f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
        latency = self.timeout if timed_out else time.monotonic() - intended
        return Sample(self.name, intended, ok, latency, detail, timed_out=timed_out)
