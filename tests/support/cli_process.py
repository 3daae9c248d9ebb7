"""The real `chaos` CLI as a subprocess, for tests of what only a real process shows (signals,
SIGKILL, the watchdog, the terminal output).

Modelled on locust's TestProcess: the command runs as users run it (`python -m chaos ...`), its
stdout and stderr go to one log file, and `expect` matches that output incrementally - each
match starts where the previous one ended - with a timeout, failing with everything printed so
far and whether the process already exited. The output goes to a file rather than a pipe: the
runner's watchdog and workers inherit it and may outlive the runner (a SIGKILL test kills the
runner on purpose), and a pipe would then never reach end-of-file.

A ChaosProcess answers the Popen calls tests make (pid, poll, wait, send_signal, kill,
returncode), so helpers such as conftest's `release` take either. Used as a context manager,
or through `close`, it never outlives its test: it is killed, frozen or not, and the Popen is
waited for (a Popen collected while its child runs is an unraisable warning in some
later, unrelated test).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[2]


class ChaosProcess:
    def __init__(self, *args: str, log: Path, env: Mapping[str, str] | None = None,
                 cwd: Path = ROOT) -> None:
        self.args, self.log = args, log
        self._seen = 0  # offset in the log where the next `expect` starts
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "chaos", *args], cwd=cwd,
                                         env={**os.environ, **(env or {})}, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        self.proc.kill()

    @property
    def output(self) -> str:
        """Everything printed so far, stdout and stderr interleaved as written."""
        return self.log.read_text(errors="replace")

    def expect(self, pattern: str, timeout: float = 30.0, every: float = 0.05) -> re.Match[str]:
        """The first match of the regex `pattern` in the output after the previous match."""
        deadline = time.monotonic() + timeout
        while True:
            exited = self.poll()  # before reading: output printed before exiting is seen
            found = re.compile(pattern).search(self.output, self._seen)
            if found:
                self._seen = found.end()
                return found
            if exited is not None or time.monotonic() >= deadline:
                state = f"exited with {exited}" if exited is not None else \
                    f"still running after {timeout:g}s"
                raise AssertionError(f"`chaos {' '.join(self.args)}` {state} without printing "
                                     f"{pattern!r}; its output:\n{self.output}")
            time.sleep(every)

    def close(self, timeout: float = 10.0) -> int:
        """Kill the process if it still runs (SIGKILL ends a stopped one too), then wait for
        it: its exit code."""
        if self.poll() is None:
            self.proc.kill()
        return self.proc.wait(timeout)

    def __enter__(self) -> ChaosProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def start_runner(path: Path, failpoints: str = "") -> ChaosProcess:
    """`chaos run -q PATH`, logging to PATH with a .log suffix, with CHAOS_FAILPOINTS set (the
    injection-protocol steps at which the runner kills itself, chaos/safety/failpoints.py)."""
    return ChaosProcess("run", "-q", str(path), log=path.with_suffix(".log"),
                        env={"CHAOS_FAILPOINTS": failpoints})
