"""`chaos proxy` in a real terminal: one live line redrawn cleanly (no stale characters), each
fault with its parameters and time left, byte counts a person reads (KiB, MiB), Ctrl-C exits 130.

The proxy is the real CLI on a pty; bytes go through it from an independent client to an echo
server of the test's own.
"""

from __future__ import annotations

import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT, free_port
from tests.support.terminal import Screen, on_pty


@pytest.fixture
def echo_server() -> Iterator[int]:
    """Echoes every byte back; the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield port
    listener.close()


def push_through(port: int, size: int) -> None:
    """Send `size` bytes through the proxy and read them back, retrying until it listens."""
    deadline = time.monotonic() + 60
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with sock:
        sock.sendall(b"x" * size)
        got = 0
        while got < size:
            chunk = sock.recv(65536)
            assert chunk, "the proxy closed the connection"
            got += len(chunk)


def test_live_line_shows_faults_and_human_bytes_and_ctrl_c_exits_130(
        echo_server: int, state_dir: object) -> None:
    listen = free_port()
    pushed = threading.Event()

    def ready(out: bytes) -> bool:
        if b"connections" in out and not pushed.is_set():
            pushed.set()
            threading.Thread(target=push_through, args=(listen, 3 * 1024 * 1024),
                             daemon=True).start()
        return bool(re.search(rb"down 3\.0 MiB", out))

    run = on_pty([sys.executable, "-m", "chaos", "proxy", "--listen", f"127.0.0.1:{listen}",
                  "--upstream", f"127.0.0.1:{echo_server}", "--fault", "network.latency",
                  "--with", "delay=5ms", "--with", "jitter=1ms", "--for", "10m"],
                 cwd=str(ROOT), columns=200, when=ready, then=signal.SIGINT, timeout=120)
    assert run.returncode == 130, run.text
    screen = Screen.of(run.output)
    live = [f for f in screen.frames if f.startswith("connections ")]
    assert live, screen.text
    line = re.compile(r"connections \d+ open, \d+ accepted \| up [\d.]+ (B|KiB|MiB), "
                      r"down [\d.]+ (B|KiB|MiB) \| latency\(delay 5ms, jitter 1ms; downstream\) "
                      r"\d+m(\d+s)? left")
    for frame in live:  # each redraw whole: a shorter line leaves nothing of a longer one
        assert line.fullmatch(frame), frame
    assert any("up 3.0 MiB, down 3.0 MiB" in f for f in live), live
    # the last status line was erased on exit: the screen ends clean
    assert not any(line.startswith("connections ") for line in screen.lines), screen.text
