"""A real pseudo-terminal for CLI tests, and a small screen model to read what it shows.

`on_pty` runs a command with stdin/stdout/stderr on a pty (so `isatty()` is true in the child,
as in a person's terminal) and returns every byte it wrote. `Screen` replays those bytes the way
a terminal does for the controls the live view uses (CR, LF, erase-line, SGR colours), so a test
can assert on what is left on screen - stale characters included - and on each redrawn frame.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fcntl import ioctl

SGR = re.compile(rb"\x1b\[[0-9;]*m")
CONTROL = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]|\r|\n|[^\x1b\r\n]+|\x1b")


@dataclass
class PtyRun:
    output: bytes
    returncode: int

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


def on_pty(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
           timeout: float = 120, columns: int = 160,
           when: Callable[[bytes], bool] | None = None,
           then: signal.Signals | None = None) -> PtyRun:
    """Run argv on a fresh pty of `columns` width. When `when(output so far)` first holds,
    send `then` (e.g. SIGINT, as Ctrl-C would) to the child."""
    leader, follower = pty.openpty()
    ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen(list(argv), stdin=follower, stdout=follower, stderr=follower,
                            env={**os.environ, **(env or {})}, cwd=cwd, close_fds=True,
                            start_new_session=True)
    os.close(follower)
    out = bytearray()
    deadline = time.monotonic() + timeout
    sent = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: every writer closed the pty
                    chunk = b""
                if not chunk:
                    break
                out += chunk
            if when is not None and then is not None and not sent and when(bytes(out)):
                proc.send_signal(then)
                sent = True
            if not ready and proc.poll() is not None:
                break
        else:
            proc.kill()
            raise AssertionError(f"{argv} did not finish within {timeout}s:\n"
                                 + out.decode("utf-8", "replace"))
        return PtyRun(bytes(out), proc.wait(30))
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@dataclass
class Screen:
    """Lines as a terminal would show them; `frames` holds each state of a redrawn line just
    before a CR or erase overwrote it (the status lines a person saw go by)."""

    lines: list[str] = field(default_factory=lambda: [""])
    frames: list[str] = field(default_factory=list)
    col: int = 0

    @classmethod
    def of(cls, output: bytes) -> Screen:
        screen = cls()
        for token in CONTROL.findall(output):
            screen._feed(token)
        return screen

    def _feed(self, token: bytes) -> None:
        line = self.lines[-1]
        if token == b"\r":
            if line.strip():
                self.frames.append(line)
            self.col = 0
        elif token == b"\n":
            self.lines.append("")
            self.col = 0
        elif token == b"\x1b[K":  # erase from the cursor to the end of the line
            self.lines[-1] = line[:self.col]
        elif token.startswith(b"\x1b"):
            pass  # colours and other attributes change no characters
        else:
            text = token.decode("utf-8", "replace")
            self.lines[-1] = line[:self.col] + text + line[self.col + len(text):]
            self.col += len(text)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)
