"""The live terminal view: prints events as they happen, and a countdown for held faults."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

from chaos.runner.events import Event


class LiveView:
    """An event subscriber writing one line per interesting event to stderr."""

    def __init__(self, stream: TextIO = sys.stderr, countdown: bool = False) -> None:
        self.stream = stream
        self.countdown = countdown and stream.isatty()
        self._ticker: asyncio.Task[None] | None = None
        self._held: dict[str, tuple[str, float]] = {}

    def line(self, t: float, text: str) -> None:
        if self.countdown:
            self.stream.write("\r\033[K")
        self.stream.write(f"  {t:7.2f}s  {text}\n")
        self.stream.flush()

    def __call__(self, event: Event) -> None:
        d = event.data
        text = {
            "run.started": lambda: f"run {d['run']}: {d['title']}",
            "service.started": lambda: f"service {d['service']} started (pid {d['pid']})",
            "service.ready": lambda: f"service {d['service']} ready after {d['after']:.2f}s",
            "service.stopped": lambda: f"service {d['service']} stopped",
            "phase.started": lambda: f"phase {d['phase']}",
            "check.evaluated": lambda: (f"  {d['verdict']['status']:<7} {d['verdict']['check']}"
                                        f" (measured {d['verdict'].get('measured') or 'n/a'})"),
            "fault.planned": lambda: f"{d['fault']}: targets {', '.join(d['targets'])}",
            "fault.injected": lambda: (f"INJECTED {d['type']} on {d['target']}" +
                                       (f" for {d['duration']:g}s" if d["duration"] else "")),
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
        if text is not None:
            self.line(event.t, text())
        if event.name == "fault.injected" and d["duration"]:
            self._held[d["injection"]] = (f"{d['type']} on {d['target']}", time.time() +
                                          d["duration"])
            self._start_ticker()
        elif event.name in ("fault.reverted", "fault.revert_failed"):
            self._held.pop(d["injection"], None)
        elif event.name == "run.finished" and self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
            self.stream.write("\r\033[K")

    def _start_ticker(self) -> None:
        if self.countdown and self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            if self._held:
                what, until = min(self._held.values(), key=lambda h: h[1])
                left = max(0.0, until - time.time())
                self.stream.write(f"\r\033[K  {what}: {left:5.1f}s left - Ctrl-C reverts now")
                self.stream.flush()
            await asyncio.sleep(0.2)
