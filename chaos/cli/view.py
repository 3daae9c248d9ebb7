"""The live terminal view: prints events as they happen; on a terminal, a status line under
them (chaos.cli.live) redrawn in place - phase, time left, live SLO figures, guardrail headroom,
faults held. Piped or redirected, only the event lines: a log gets no carriage returns."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import TextIO

from typing import Any

from chaos.cli import colour
from chaos.cli.live import Progress
from chaos.runner.events import Event

REDRAW = 0.25  # seconds between redraws of the status line


class LiveView:
    """An event subscriber writing one line per interesting event to stderr, and on a terminal
    a status line below them (`countdown` for `chaos inject`; `experiment` for `chaos run`)."""

    def __init__(self, stream: TextIO = sys.stderr, countdown: bool = False,
                 experiment: Any = None) -> None:
        self.stream = stream
        self.countdown = (countdown or experiment is not None) and _isatty(stream)
        self.progress = Progress(experiment)
        self._ticker: asyncio.Task[None] | None = None
        self._held: dict[str, tuple[str, float]] = {}

    def line(self, t: float, text: str) -> None:
        if self.countdown:
            self.stream.write("\r\033[K")
        self.stream.write(f"  {t:7.2f}s  {text}\n")
        if self.countdown and self._ticker is not None:
            self._draw()  # the status line stays under the newest event line
        self.stream.flush()

    def __call__(self, event: Event) -> None:
        d = event.data
        text = {
            "run.started": lambda: f"run {d['run']}: {d['title']}",
            "service.started": lambda: f"service {d['service']} started (pid {d['pid']})",
            "service.ready": lambda: f"service {d['service']} ready after {d['after']:.2f}s",
            "service.stopped": lambda: f"service {d['service']} stopped",
            "phase.started": lambda: f"phase {d['phase']}",
            "check.evaluated": lambda: (f"  {self._status(d['verdict']['status'])} "
                                        f"{d['verdict']['check']}"
                                        f" (measured {d['verdict'].get('measured') or 'n/a'})"),
            "fault.planned": lambda: f"{d['fault']}: targets {', '.join(d['targets'])}",
            "fault.injected": lambda: (f"INJECTED {d['type']} on {d['target']}" +
                                       (f" for {d['duration']:g}s" if d["duration"] else "") +
                                       f" (id {d['injection']})"),
            "fault.failed": lambda: f"injection FAILED on {d['target']}: {d['error']}",
            "fault.reverted": lambda: f"reverted {d['fault']} on {d['target']} ({d['outcome']})"
                                      + (f" by {d['by']} at {d['at']:.2f}s" if d.get("by") not in
                                         (None, "", "runner") else ""),
            "fault.revert_failed": lambda: f"REVERT FAILED {d['fault']} on {d['target']}: "
                                           f"{d['error']}",
            "guardrail.breached": lambda: (f"GUARDRAIL BREACHED: {d['check']} (measured "
                                           f"{d['verdict'].get('measured') or 'n/a'}); "
                                           "reverting now"),
            "run.interrupted": lambda: f"{d['signal']}: reverting everything now",
            "run.recovered": lambda: f"probes answer again {d['after']:.2f}s after the revert",
        }.get(event.name)
        self.progress(event)
        if text is not None:
            self.line(event.t, text())
        if event.name in ("phase.started", "run.started") and self.progress.experiment:
            self._start_ticker()
        if event.name == "fault.injected" and d["duration"]:
            self._held[d["injection"]] = (f"{d['type']} on {d['target']}", time.time() +
                                          d["duration"])
            self._start_ticker()
        elif event.name in ("fault.reverted", "fault.revert_failed"):
            self._held.pop(d["injection"], None)
        elif event.name == "run.finished":
            self.close()

    def close(self) -> None:
        """Stop redrawing and erase the status line (also when the run could not start)."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
            self.stream.write("\r\033[K")
            self.stream.flush()

    def _start_ticker(self) -> None:
        if self.countdown and self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    def _status(self, status: str) -> str:
        return colour.paint(f"{status:<7}", status, self.stream)

    def _draw(self) -> None:
        if self.progress.experiment is None:  # chaos inject: the held fault's countdown
            if self._held:
                what, until = min(self._held.values(), key=lambda h: h[1])
                left = max(0.0, until - time.time())
                self.stream.write(f"\r\033[K  {what}: {left:5.1f}s left - Ctrl-C reverts now")
            return
        text = self.progress.render(_width(self.stream))
        if text:
            self.stream.write("\r\033[K" + colour.paint(text, "bold", self.stream))

    async def _tick(self) -> None:
        while True:
            try:
                self._draw()
                self.stream.flush()
            except Exception:  # a display bug must not end the run, nor pass unseen
                logging.getLogger(__name__).exception("the live status line failed")
                return
            await asyncio.sleep(REDRAW)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _width(stream: TextIO) -> int:
    import os
    import shutil

    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return shutil.get_terminal_size().columns
