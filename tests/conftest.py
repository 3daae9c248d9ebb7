"""Shared fixtures: an isolated state dir per test, the real CLI as a subprocess, real servers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ledger/lock directory, also exported for CLI subprocesses."""
    path = tmp_path / "state"
    monkeypatch.setenv("CHAOS_STATE_DIR", str(path))
    monkeypatch.setenv("CHAOS_RUNS_DIR", str(tmp_path / "runs"))
    return path


def chaos_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "chaos", *args]


def run_chaos(*args: str, timeout: float = 120, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(chaos_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or ROOT, env={**os.environ, **(env or {})})


@pytest.fixture
def sleeper() -> Iterator[psutil.Process]:
    """A real, harmless target process that belongs to the test."""
    proc = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"])
    yield psutil.Process(proc.pid)
    try:
        os.kill(proc.pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
    proc.kill()
    proc.wait(5)


@pytest.fixture
def demo_service() -> Iterator[int]:
    """The bundled demo HTTP service on a free port; yields the port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "chaos.demo.service", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    try:
        os.kill(proc.pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
    proc.terminate()
    proc.wait(5)


def process_state(pid: int) -> str:
    """The kernel's view, read from /proc: R, S, T (stopped), Z..."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]
