"""Python activities for the Chaos Toolkit fixture experiments (module `tests.ctk.activities`).

Side effects go to files named by the caller, so tests can see from outside what ran."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def value(value: Any) -> Any:
    return value


def as_json(value: Any) -> str:
    return json.dumps(value)


def exists(path: str) -> bool:
    return Path(path).exists()


def touch(path: str) -> str:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("ran\n")
    return path


def append(path: str, line: str) -> None:
    with open(path, "a") as handle:
        handle.write(line + "\n")


def slow(seconds: float, started: str = "") -> str:
    if started:  # the test signals the runner once the foreground action is under way
        Path(started).touch()
    time.sleep(seconds)
    return "done"


def fail(message: str = "this activity fails on purpose") -> None:
    raise RuntimeError(message)


def fail_if_exists(path: str) -> bool:
    if Path(path).exists():
        raise RuntimeError(f"{path} exists")
    return True


def is_even(value: int) -> bool:
    """A tolerance probe: chaoslib passes the probe's output as `value`."""
    return value % 2 == 0


def tick(path: str, seconds: float) -> str:
    """Note that it started (a line in `path`), then take `seconds`: a slow probe seen from
    outside."""
    append(path, "tick")
    time.sleep(seconds)
    return "done"


def stall_keeper(seconds: float) -> str:
    """Hold up the loop chaos.ctk.actions' faults run on, so their revert is late."""
    from chaos.ctk.keeper import KEEPER

    KEEPER._running_loop().call_soon_threadsafe(time.sleep, seconds)
    return "stalled"


def end_gracefully() -> str:
    """What a safeguard does: chaoslib.exit.exit_gracefully sends this process SIGUSR1."""
    from chaoslib.exit import exit_gracefully

    exit_gracefully()
    return "asked to end"



def exit_with(code: int) -> None:
    """sys.exit() in an activity, which chaoslib records as an interrupted run."""
    raise SystemExit(code)


def exit_if_exists(path: str) -> bool:
    """A probe that calls sys.exit(0) once `path` exists (a method action creates it)."""
    if Path(path).exists():
        raise SystemExit(0)
    return True
