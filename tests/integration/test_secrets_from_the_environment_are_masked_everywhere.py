"""A secret that reached the run from the environment (`API_TOKEN=... chaos run`, no --var) is
masked in every record and every output, like one given with --var.

The secret sits in a declared service's command line (journal: summary, `service.started`) and
in the command line of a process a fault targets, so the target's label (pid + command line)
carries it into the ledger, the events, the live view and - after the runner is frozen and the
watchdog reverts - the watchdog's log. The
test then reads every file under the state dir and the runs dir, and every output, for it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil

from tests.conftest import (
    ROOT, chaos_cmd, process_state, processes_matching, run_chaos, unique_marker,
    wait_until,
)


def leaks(secret: str, texts: dict[str, str]) -> list[str]:
    """Where the secret (or its first 6 characters: a cut one) shows."""
    return [where for where, text in texts.items() if secret[:6] in text]


def files_under(*roots: Path) -> dict[str, str]:
    return {str(p): p.read_text(errors="replace") for root in roots for p in root.rglob("*")
            if p.is_file()}


def test_an_environment_secret_is_masked_in_every_record_and_output(
    tmp_path: Path, state_dir: Path, spawn_sleepers: Callable[..., list[psutil.Process]]
) -> None:
    secret = uuid.uuid4().hex
    marker = unique_marker()
    # a short command line: its label (cut at 60 characters) ends inside the secret
    [target] = spawn_sleepers(1, argv=["/bin/sh", "-c", "sleep 120; :", f"--token={secret}",
                                       marker])
    path = tmp_path / "secret.yaml"
    path.write_text(f"""title: an environment secret stays out of everything
services:
  - name: api
    run: ["${{python}}", -c, "import time; time.sleep(120)", "--token=${{API_TOKEN}}"]
faults:
  - name: freeze-api
    type: process.suspend
    target: {{process: {{cmdline: "{marker}"}}}}
    start: 500ms
    duration: 8s
""")
    env = {**os.environ, "API_TOKEN": secret, "CHAOS_HEARTBEAT_TIMEOUT": "2"}
    outputs: dict[str, str] = {}
    dry = run_chaos("run", "--dry-run", str(path), env={"API_TOKEN": secret})
    outputs["dry-run"] = dry.stdout + dry.stderr
    with open(tmp_path / "runner.out", "wb") as out:
        runner = subprocess.Popen(chaos_cmd("run", str(path)), cwd=ROOT, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: process_state(target.pid) == "T", 30) is not None, (
            (tmp_path / "runner.out").read_text())
        [service] = [p for p in processes_matching(secret) if p.pid != target.pid]
        status = run_chaos("status")
        outputs["status"] = status.stdout + status.stderr
        os.kill(runner.pid, signal.SIGSTOP)  # a frozen runner: its watchdog reverts and logs
        assert wait_until(lambda: process_state(target.pid) != "T", 20) is not None
        os.kill(runner.pid, signal.SIGCONT)
        assert runner.wait(60) == 0, (tmp_path / "runner.out").read_text()
    finally:
        if runner.poll() is None:
            os.kill(runner.pid, signal.SIGCONT)
            runner.kill()
            runner.wait(10)  # an unwaited Popen warns in a later test
    outputs["run"] = (tmp_path / "runner.out").read_text()
    records = files_under(state_dir, tmp_path / "runs")
    assert any("watchdog" in p and "reverting" in t for p, t in records.items()), records.keys()
    assert any("***" in t for p, t in records.items() if "/ledger/" in p)
    assert "***" in outputs["run"] and "***" in outputs["dry-run"]
    assert leaks(secret, {**records, **outputs}) == []
