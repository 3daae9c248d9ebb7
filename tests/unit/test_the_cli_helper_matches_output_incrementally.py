"""tests/support/cli_process.py runs the real CLI; its `expect` is what subprocess tests wait
with, so a match that restarts at the beginning, or a timeout that never comes, would make them
pass or hang for the wrong reason."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support.cli_process import ChaosProcess


def test_matches_start_where_the_previous_one_ended(tmp_path: Path) -> None:
    with ChaosProcess("faults", log=tmp_path / "faults.log") as chaos:
        first = chaos.expect(r"process\.\w+")
        second = chaos.expect(r"process\.\w+")
        assert second.start() >= first.end()
        assert chaos.wait(30) == 0


def test_a_process_that_exits_without_the_text_fails_at_once_with_its_output(
        tmp_path: Path) -> None:
    with ChaosProcess("validate", str(tmp_path / "missing.yaml"), log=tmp_path / "v.log") as chaos:
        with pytest.raises(AssertionError) as failed:
            chaos.expect("never printed", timeout=60)
        assert "exited with 2" in str(failed.value)
        assert "missing.yaml" in str(failed.value)


def test_a_process_that_stays_silent_fails_after_the_timeout_and_is_killed_on_close(
        tmp_path: Path) -> None:
    chaos = ChaosProcess("faults", log=tmp_path / "faults.log")
    chaos.send_signal(signal.SIGSTOP)  # long before the interpreter has started: silent
    with pytest.raises(AssertionError, match="still running after 0.5s"):
        chaos.expect("process", timeout=0.5)
    assert chaos.close() == -signal.SIGKILL
    assert chaos.poll() is not None
