"""Labels of process targets (status, journals, reports) name the program by its base name and
are cut between words with an ellipsis: a label cut inside a word misleads
(`http.server 1820` for a server on port 18202)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from chaos.units import clip
from tests.conftest import free_port, release, run_chaos


@pytest.mark.parametrize(("text", "limit", "expected"), [
    ("python3 -m http.server 18202", 60, "python3 -m http.server 18202"),
    ("python3 -m http.server 18202", 24, "python3 -m http.server…"),
    ("python3 -m http.server 18202", 27, "python3 -m http.server…"),
    ("averyveryverylongsingleword", 10, "averyvery…"),
])
def test_clip(text: str, limit: int, expected: str) -> None:
    assert clip(text, limit) == expected
    assert len(clip(text, limit)) <= limit


@pytest.fixture
def server() -> Iterator[tuple[int, int]]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="a-directory-with-a-long-name-") as root:
        proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                                 "127.0.0.1", "--directory", root],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield proc.pid, port
        release(proc)


def test_a_server_is_named_by_its_program_and_whole_words(server: tuple[int, int]) -> None:
    pid, port = server
    result = run_chaos("inject", "process.suspend", "--pid", str(pid), "--for", "1s",
                       "--dry-run", timeout=60)
    assert result.returncode == 0, result.stderr
    (label,) = [line.strip()[3:] for line in result.stdout.splitlines()
                if line.strip().startswith("-> ")]
    name = sys.executable.rsplit("/", 1)[-1]
    assert label.startswith(f"pid {pid} ({name} -m http.server {port} --bind 127.0.0.1"), label
    assert label.endswith("…)") and "/bin/" not in label
