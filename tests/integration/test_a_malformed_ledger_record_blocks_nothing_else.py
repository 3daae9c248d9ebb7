"""One ledger record that is not what it claims (an intent whose `revert` is not an object)
is quarantined: `chaos status` and `chaos recover` name its file and line and go on with every
other run. The other run's target is a real process; whether it was resumed is read in /proc."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import psutil

from chaos.safety.ledger import Ledger
from tests.conftest import open_injections, process_state, run_chaos, unique_marker


def test_status_and_recover_quarantine_the_bad_record_and_recover_the_other_run(
    state_dir: Path, spawn_sleepers: Callable[..., list[psutil.Process]]
) -> None:
    [target] = spawn_sleepers(1, unique_marker())
    os.kill(target.pid, signal.SIGSTOP)
    ledger = Ledger(state_dir)
    for run in ("good", "bad"):  # both runners gone: pid of the test, wrong create time
        ledger.start_run(run, pid=os.getpid(), pid_create_time=0.0, title=run)
    ledger.intent("good", "good.0.0", fault="process.suspend", target=f"pid {target.pid}",
                  revert={"adapter": "local.process", "action": "resume",
                          "processes": [{"pid": target.pid,
                                         "create_time": target.create_time()}]},
                  deadline=None)
    with open(ledger.path("bad"), "a") as handle:  # written by hand, or by an old plugin
        handle.write(json.dumps({"v": 1, "ts": 1.0, "event": "intent", "run": "bad",
                                 "id": "bad.0.0", "revert": "kill -CONT 1234"}) + "\n")
    where = f"{ledger.path('bad')}:2"

    status = run_chaos("status")
    assert status.returncode == 5, status.stderr  # the good run's runner is gone: orphaned
    assert "RUNNER GONE" in status.stdout, status.stdout
    assert "good.0.0" in status.stdout and where in status.stderr, status
    assert "Traceback" not in status.stderr and "internal error" not in status.stderr

    recovered = run_chaos("recover")
    assert process_state(target.pid) != "T", recovered  # the good run was recovered
    assert where in recovered.stderr and "revert` is not an object" in recovered.stderr
    assert recovered.returncode == 5, recovered  # it cannot vouch for what that line was
    assert "internal error" not in recovered.stderr
    assert open_injections() == []
