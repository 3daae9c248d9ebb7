"""Endurance: a long run must not grow the runner. Three minutes of 300 req/s through the real
CLI against the demo service, the runner's RSS read from outside (psutil) every second: after
the first minute (100 ms ticks fill their one-minute history, the allocator warms up) its slope
stays under 1 MiB a minute. Before the fix it grew by tens of MiB a minute (dropped buckets
freed only by a full GC, every second's histograms kept live); benchmarks/endurance_memory.py
runs the hour."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, chaos_cmd, release

RATE = 300
WINDOW = 170  # seconds of traffic: the run lasts about three minutes
SETTLED = 60.0  # RSS is judged from here on
MAX_SLOPE = 1.0  # MiB per minute


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB), in MiB per minute."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    num = sum((t - mean_t) * (m - mean_m) for t, m in points)
    den = sum((t - mean_t) ** 2 for t, _ in points)
    return num / den * 60


@pytest.mark.timeout(WINDOW + 240)
def test_three_minutes_of_traffic_keep_the_runner_rss_flat(
    tmp_path: Path, state_dir: Path, demo_service: int
) -> None:
    path = tmp_path / "endurance.yaml"
    path.write_text(f"""title: three minutes of steady traffic
hypothesis:
  traffic: {{http: {{url: "http://127.0.0.1:{demo_service}/", rate: {RATE}/s, timeout: 1s,
                      max_lag: 250ms}}}}  # a loaded test machine is not the point here
  checks: [availability >= 0%]
  before: {{window: {WINDOW}s}}
faults: []
limits: {{max_duration: 10m}}
""")
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(chaos_cmd("run", str(path)), cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)
    runner = psutil.Process(proc.pid)
    started = time.monotonic()
    points: list[tuple[float, float]] = []
    try:
        while proc.poll() is None and time.monotonic() - started < WINDOW + 120:
            try:
                rss = runner.memory_info().rss / 2**20
            except psutil.Error:
                break
            points.append((time.monotonic() - started, rss))
            time.sleep(1.0)
        proc.wait(timeout=WINDOW + 120)
    finally:
        if proc.poll() is None:
            release(proc)
    assert proc.returncode in (0, 2), log.read_text(errors="replace")[-2000:]
    judged = [(t, m) for t, m in points if SETTLED <= t <= WINDOW]
    assert len(judged) >= 60, points
    growth = slope(judged)
    table = " ".join(f"{t:.0f}s:{m:.1f}" for t, m in points[::10])
    assert growth < MAX_SLOPE, f"RSS grows {growth:.2f} MiB/min after the first minute: {table}"
