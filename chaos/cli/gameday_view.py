"""`chaos gameday run` on a terminal: its progress lines, coloured, under a status line redrawn
in place (which experiments run and for how long, what the finished ones gave). Piped, only the
lines: a CI log gets no carriage returns and no colour."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from typing import Any, TextIO

import click

from chaos.cli import colour
from chaos.cli.live import fit, gameday_line

REDRAW = 0.5  # seconds
# `[2/5] deviated: ...`: the verdict word gets its colour
VERDICT = re.compile(r"^(\[\d+/\d+\] )(held|deviated|aborted|steady-state-not-met|"
                     r"revert-failed|interrupted|error)(:)")
STYLE = {"held": "PASS", "deviated": "FAIL", "aborted": "FAIL", "revert-failed": "FAIL",
         "steady-state-not-met": "FAIL", "interrupted": "ERROR", "error": "ERROR"}


class GameDayView:
    def __init__(self, status: TextIO = sys.stderr) -> None:
        self.status = status
        self.live = _isatty(status)
        self.runner: Any = None
        self.drawn = False

    def echo(self, message: str, err: bool = False) -> None:
        self._clear()
        stream = sys.stderr if err else sys.stdout
        message = VERDICT.sub(lambda m: m.group(1) + colour.paint(
            m.group(2), STYLE[m.group(2)], stream) + m.group(3), message)
        click.echo(message, err=err)
        self._draw()

    async def around(self, runner: Any) -> int:
        """Run the game day with the status line ticking under its lines."""
        self.runner = runner
        ticker = asyncio.create_task(self._tick()) if self.live else None
        try:
            return int(await runner.run())
        finally:
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
            self._clear()

    def _clear(self) -> None:
        if self.drawn:
            self.status.write("\r\033[K")
            self.status.flush()
            self.drawn = False

    def _draw(self) -> None:
        if not self.live or self.runner is None or not self.runner.started:
            return
        from chaos.cli.view import _width

        line = fit(">> " + gameday_line(self.runner.slots, self.runner.started, time.time()),
                   _width(self.status))
        self.status.write("\r\033[K" + colour.paint(line, "bold", self.status))
        self.status.flush()
        self.drawn = True

    async def _tick(self) -> None:
        while True:
            self._draw()
            await asyncio.sleep(REDRAW)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
