"""chaoslib's blocking calls, made abandonable: threads we never join, subprocesses we can kill.

chaoslib runs activities synchronously (a python function, a subprocess, an HTTP request, a
`time.sleep` pause). We run each call in a thread and await it, so a signal can stop *waiting*
at once. A running thread cannot be cancelled, so it is abandoned: the threads are daemons of
our own (not the loop's default executor, which `asyncio.run` and the interpreter join at
exit), and the process exits after its rollbacks without waiting for them.

What an abandoned thread is waiting for may itself be harmful, so process-provider
subprocesses are started in their own session and killed with everything in that session
(`kill_all`), grandchildren included: chaoslib's own provider starts string arguments with
`shell=True` and, on timeout, kills only the shell. We substitute only the `subprocess` name
inside chaoslib.provider.process; path resolution, argument handling and the result shape
remain chaoslib's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import types
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()
# kill_all starts a new generation; a subprocess started by a thread of an older one (an
# abandoned activity that was about to start it) is killed as soon as it registers
_generation = 0
_local = threading.local()


class Exited(Exception):  # noqa: N818 - named after what happened, like SystemExit
    """The call raised SystemExit (`sys.exit()` in a control or a python activity). Handed to
    the awaiting task as a plain exception: a SystemExit raised inside an asyncio task stops
    the event loop itself, ending the process with that code before the run is recorded."""

    def __init__(self, code: object) -> None:
        super().__init__(f"SystemExit({code!r})")
        self.code = code


async def in_thread(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Like asyncio.to_thread, but on a daemon thread nobody joins: cancelling the await
    abandons the call instead of blocking exit until it returns. SystemExit comes back as
    Exited."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    generation = _generation

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return  # the awaiting task was cancelled: nobody wants the result any more
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def work() -> None:
        _local.generation = generation
        try:
            result = func(*args, **kwargs)
        except SystemExit as exc:
            outcome: tuple[bool, Any] = (False, Exited(exc.code))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            outcome = (False, exc)
        else:
            outcome = (True, result)
        with contextlib.suppress(RuntimeError):  # the loop closed: the run is over
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=work, name=f"ctk:{getattr(func, '__name__', 'call')}",
                     daemon=True).start()
    return await future


def _run(args: Any, *, timeout: float | None = None, **kwargs: Any) -> subprocess.CompletedProcess[
        bytes]:
    """subprocess.run as chaoslib calls it, in a new session we can kill as a whole."""
    kwargs.pop("start_new_session", None)
    with subprocess.Popen(args, start_new_session=True, **kwargs) as proc:
        with _live_lock:  # either kill_all sees it, or it sees kill_all's new generation
            _live.add(proc)
            late = getattr(_local, "generation", _generation) < _generation
        if late:
            _kill_group(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise
        finally:
            with _live_lock:
                _live.discard(proc)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the subprocess's whole session: its process group, and the members that moved to
    groups of their own (`timeout`, shells' job control) - they keep the session. Linux does
    not reuse a pid while it names a live session or group, so this never hits a stranger."""
    sid = proc.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, signal.SIGKILL)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getsid(int(entry)) == sid:
                os.kill(int(entry), signal.SIGKILL)


def kill_all() -> int:
    """Kill every process-provider subprocess still running (its whole group), and any that a
    thread started before this call starts later; how many. Threads started after it (the
    rollbacks) are not affected."""
    global _generation
    with _live_lock:
        _generation += 1
        procs = list(_live)
    for proc in procs:
        _kill_group(proc)
    return len(procs)


def install() -> None:
    """Route chaoslib's process provider through `_run` (idempotent)."""
    from chaoslib.provider import process

    if getattr(process.subprocess, "__chaos__", False):
        return
    shim = types.SimpleNamespace(**{k: getattr(subprocess, k) for k in dir(subprocess)
                                    if not k.startswith("__")})
    shim.run = _run
    shim.__chaos__ = True
    process.subprocess = shim
