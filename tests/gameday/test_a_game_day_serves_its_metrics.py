"""`chaos gameday run --metrics`: while the game day runs, /metrics (read by an independent
client, as a scraper would) shows the fault held by the running experiment through the shared
ledger, and each experiment's status; the last scrape before exit shows them done and held."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import chaos_cmd, free_port, release
from tests.gameday.conftest import NO_PROXY, write_gameday


def scrape(port: int) -> list[str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            return [line for line in answer.read().decode().splitlines()
                    if line.startswith("chaos_")]
    except OSError:
        return []


def test_the_game_days_faults_and_experiments_are_on_metrics(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)"])
    (tmp_path / "freeze.yaml").write_text(f"""title: freeze the sleeper
faults:
  - type: process.suspend
    target: {{process: {{pid: {sleeper.pid}}}}}
    duration: 3s
""")
    path = write_gameday(tmp_path, f"""
title: Metrics game day
experiments: ["{tmp_path}/freeze.yaml"]
""")
    port = free_port()
    env = {"CHAOS_STATE_DIR": str(tmp_path / "state"), **NO_PROXY}
    day = subprocess.Popen(chaos_cmd("gameday", "run", str(path), "--out", str(tmp_path / "out"),
                                     "--metrics", f"127.0.0.1:{port}"),
                           env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    during: list[str] = []
    last: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while day.poll() is None and time.monotonic() < deadline:
            lines = scrape(port)
            if lines:
                last = lines
                if any(line.startswith('chaos_ledger_open_faults{type="process.suspend"} 1')
                       for line in lines):
                    during = lines
            time.sleep(0.1)
        assert day.wait(10) == 0
    finally:
        if day.poll() is None:
            day.kill()
            day.wait()
        release(sleeper)
    assert during, "the held fault never showed on /metrics"
    assert any(line.startswith("chaos_gameday_experiment_status") and 'status="running"' in line
               for line in during)
    final = [line for line in last if line.startswith("chaos_gameday_experiment_status")]
    assert len(final) == 1 and 'status="done"' in final[0] and 'verdict="held"' in final[0]
    assert not any(line.startswith("chaos_ledger_open_faults{") for line in last)
