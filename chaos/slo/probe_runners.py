"""The built-in probe kinds' runners, each declared with its schema by `builtin`.

    http     GET (or any method) a URL; ok when the status matches and the body matches a regex
    tcp      connect to host:port
    exec     run a command (argv, never a shell); ok when the exit code (and stdout) match
    process  a process matching a selector is alive
    pods / deployment   Kubernetes: enough Ready pods / available replicas
                        (chaos.adapters.kubernetes.probes, imported when first sampled)

`chaos validate` imports this module to know the kinds, so everything a runner needs at run
time (asyncio, the HTTP client, psutil, the Kubernetes client) is imported inside it. Runners are
cancellable at any await: the caller (chaos.slo.probes) bounds the time.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Mapping
from typing import Any

from chaos.errors import ProbeError, TargetNotFound
from chaos.slo.probe_kinds import builtin
from chaos.slo.probe_schema import DEPLOYMENT, EXEC, HTTP, PODS, PROCESS, TCP

EXEC_REAP_TIMEOUT = 2.0  # after killing an exec probe's group, wait this long for its pipes


def _required(spec: Mapping[str, Any], key: str, kind: str) -> Any:
    if spec.get(key) is None:
        raise ProbeError(f"{kind} probe needs `{key}`")
    return spec[key]


def _load_http_client() -> None:
    from chaos.slo.http_client import warm

    warm()


@builtin("http", HTTP, prepare=_load_http_client)
async def http(spec: Mapping[str, Any]) -> tuple[bool, str]:
    from chaos.slo.http_client import Client, HttpFailed, Tls, request

    url = str(_required(spec, "url", "http"))
    try:
        reply = await request(url, method=str(spec.get("method") or "GET"),
                              headers=spec.get("headers"),
                              body=(spec.get("body") or "").encode(),
                              settings=Client(Tls(verify=spec.get("verify_tls") is not False)))
    except HttpFailed as exc:
        return False, str(exc)
    wanted = spec.get("status")
    if (reply.status not in wanted) if wanted else not 200 <= reply.status < 300:
        return False, f"HTTP {reply.status}"
    pattern = spec.get("expect_body")
    if pattern and not re.search(pattern, reply.text):
        return False, f"HTTP {reply.status}, body does not match {pattern!r}"
    return True, f"HTTP {reply.status}"


@builtin("tcp", TCP)
async def tcp(spec: Mapping[str, Any]) -> tuple[bool, str]:
    import asyncio

    host, _, port = str(_required(spec, "address", "tcp")).rpartition(":")
    _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    writer.close()
    return True, "connected"


@builtin("exec", EXEC)
async def run_command(spec: Mapping[str, Any]) -> tuple[bool, str]:
    import asyncio

    from chaos.lifetime import die_with_parent

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


@builtin("process", PROCESS, default_timeout=2.0)
async def process(spec: Mapping[str, Any]) -> tuple[bool, str]:
    import asyncio

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


@builtin("pods", PODS, cluster=True)
async def pods(spec: Mapping[str, Any]) -> tuple[bool, str]:
    from chaos.adapters.kubernetes.probes import ready_pods

    return await ready_pods(spec, spec.get("kubernetes") or {})


@builtin("deployment", DEPLOYMENT, cluster=True)
async def deployment(spec: Mapping[str, Any]) -> tuple[bool, str]:
    from chaos.adapters.kubernetes.probes import available_replicas

    return await available_replicas(spec, spec.get("kubernetes") or {})
