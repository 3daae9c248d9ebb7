"""One run lifecycle, shared by the native engine and the Chaos Toolkit engine.

    work      runs as one task; `stop` (a guardrail, `chaos stop`, a rollback) or a signal
              cancels it, whatever it is awaiting (a probe, a sleep, an injection)
    cleanup   always runs, in a task of its own that nothing reaches: cancelling the run
              while it cleans up (a second Ctrl-C, a caller's timeout, pytest's KeyboardInterrupt)
              only makes the run re-raise once every revert has happened and been recorded

Both engines exist to keep one promise - no fault outlives its experiment - and that promise
lives here once. Signal handlers are not installed by an engine: the caller (the CLI, the pytest
plugin) installs them with `handling_signals`, and a run on a thread that owns no signals (the
Chaos Toolkit keeper) simply installs none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable, Iterator

from chaos.errors import ExitCode

log = logging.getLogger(__name__)

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


def interrupted(signum: int) -> tuple[ExitCode, str]:
    """How a run ends after SIGINT (130) or SIGTERM (143)."""
    name = signal.Signals(signum).name
    code = ExitCode.INTERRUPTED if signum == signal.SIGINT else ExitCode.TERMINATED
    return code, f"interrupted by {name}"


class Lifecycle:
    """Cancel-then-clean-up for one run. Use each instance for one run."""

    def __init__(self) -> None:
        self.stopped: tuple[ExitCode, str] | None = None  # why the work was cancelled
        # set by the engine: what a signal means to it, and what it does first (an event)
        self.signal_outcome: Callable[[int], tuple[ExitCode, str]] = interrupted
        self.on_signal: Callable[[str], object] = lambda name: None
        self._work: asyncio.Task[None] | None = None

    @property
    def work_cancelled(self) -> bool:
        """Whether the work ended because it was stopped (not: finished, then stopped)."""
        return self._work is not None and self._work.cancelled()

    @property
    def stopping(self) -> bool:
        return self.stopped is not None

    def stop(self, code: ExitCode, reason: str) -> None:
        """End the work early with this outcome; later calls are ignored. Call it on the run's
        event loop."""
        if self.stopped is None:
            self.stopped = (code, reason)
            if self._work is not None:
                self._work.cancel()

    def interrupt(self, signum: int) -> None:
        """A signal: stop, once. A second one never shortens the cleanup."""
        name = signal.Signals(signum).name
        if self.stopped is not None:
            log.warning("%s received while reverting: reverts always finish; please wait", name)
            return
        self.on_signal(name)
        self.stop(*self.signal_outcome(signum))

    async def run(self, work: Callable[[], Awaitable[None]],
                  cleanup: Callable[[], Awaitable[object]]) -> Exception | None:
        """Run `work`, then `cleanup` whatever happened; the error `work` raised, if any.

        A cancellation that `stop` did not ask for (the caller's) is re-raised, after the
        cleanup."""
        async def working() -> None:
            await work()

        self._work = asyncio.create_task(working(), name="chaos-run")
        if self.stopped is not None:  # stopped (a signal) before it started: clean up only
            self._work.cancel()
        error: Exception | None = None
        outside: asyncio.CancelledError | None = None
        try:
            await self._work
        except asyncio.CancelledError as exc:
            me = asyncio.current_task()
            if self.stopped is None or (me is not None and me.cancelling()):
                outside = exc  # the caller cancelled us: still clean up, then say so
                self._work.cancel()
        except Exception as exc:  # noqa: BLE001 - the engine decides what it means
            error = exc
        await shielded(cleanup)
        if outside is not None:
            raise outside
        return error


async def shielded(cleanup: Callable[[], Awaitable[object]]) -> None:
    """Run `cleanup` to its end in a task of its own; cancelling the caller meanwhile is
    re-raised only once it has ended."""
    async def cleaning() -> None:
        await cleanup()

    task = asyncio.create_task(cleaning(), name="chaos-cleanup")
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            if task.done() and task.cancelled():
                raise
            cancelled = exc
            log.warning("cancelled while reverting: reverts always finish; please wait")
    if cancelled is not None:
        task.result()
        raise cancelled
    task.result()


@contextlib.contextmanager
def handling_signals(lifecycle: Lifecycle, signals: Iterable[int] = INTERRUPTS) -> Iterator[None]:
    """Route these signals to `lifecycle` while the block runs (on the running loop's thread,
    which must be the main thread)."""
    loop = asyncio.get_running_loop()
    installed = list(signals)
    for signum in installed:
        loop.add_signal_handler(signum, lifecycle.interrupt, signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
