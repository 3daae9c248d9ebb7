"""time.skew on a declared service, seen in the service's own clock readings.

The service appends `time.time()` to a file every 100 ms; the runner starts it under
libfaketime. The jumps in its readings (consecutive readings are ~0.1 s apart) show when the
offset took effect and when it ended; its last reading, against the test's own clock, shows it
is back to real time. After SIGKILL of the runner, the watchdog writes the offset file back.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, chaos_cmd, open_injections, run_chaos, wait_until

DAYS_30 = 30 * 86400
SERVICE = ("[\"${python}\", -u, -c, \"import sys, time\\nwhile True:\\n  open(sys.argv[1], 'a')"
           ".write(f'{time.time()}\\\\n'); time.sleep(0.1)\", %s]")


def experiment(tmp: Path, times: Path, duration: str, offset: str = "-30d",
               hypothesis: bool = True) -> Path:
    path = tmp / "skew.yaml"
    text = f"""title: the service's clock jumps back a month
services:
  - name: clock
    run: {SERVICE % times}
    ready: {{delay: 1s}}
faults:
  - type: time.skew
    target: {{service: clock}}
    with: {{offset: "{offset}"}}
    duration: {duration}
"""
    if hypothesis:  # keeps the service running (and read) for a while after the revert
        text += """hypothesis:
  probes:
    - exec: {run: [/bin/true]}
  before: {window: 2s}
  after: {settle: 1s, window: 3s}
"""
    path.write_text(text)
    return path


def readings(times: Path) -> list[float]:
    if not times.exists():
        return []
    return [float(line) for line in times.read_text().split() if line.strip()]


def jumps(values: list[float]) -> list[float]:
    return [round(b - a) for a, b in zip(values, values[1:]) if abs(b - a) > 60]


@pytest.mark.needs("faketime")
def test_the_clock_is_skewed_during_the_fault_and_not_after(tmp_path: Path,
                                                             state_dir: Path) -> None:
    times = tmp_path / "times.txt"
    result = run_chaos("run", "-q", str(experiment(tmp_path, times, "3s")), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    values = readings(times)
    assert jumps(values) == [-DAYS_30, DAYS_30], jumps(values)
    during = [v for v in values if v < time.time() - DAYS_30 + 3600]
    assert len(during) >= 10  # 3 s of readings, 30 days back
    assert abs(values[-1] - time.time()) < 60  # the last reading is real time again
    after = values.index(during[-1]) + 1
    assert len(values) - after >= 10  # it kept running, unskewed, after the revert


@pytest.mark.needs("faketime")
def test_the_watchdog_restores_the_clock_when_the_runner_is_killed(
        tmp_path: Path, state_dir: Path) -> None:
    times = tmp_path / "times.txt"
    path = experiment(tmp_path, times, "60s", offset="+2h", hypothesis=False)
    runner = subprocess.Popen(chaos_cmd("run", "-q", str(path)), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: 7200 in jumps(readings(times)), 60, 0.1) is not None
        offset_files = list((tmp_path / "runs").glob("*/clock-clock"))
        assert len(offset_files) == 1 and offset_files[0].read_text().strip() == "+7200"
        runner.send_signal(signal.SIGKILL)
        runner.wait(10)
        assert wait_until(lambda: offset_files[0].read_text().strip() == "+0", 30, 0.1), \
            "the watchdog did not write the offset back"
        assert wait_until(lambda: open_injections() == [], 20, 0.2) is not None
    finally:
        runner.kill()
        runner.wait(10)


@pytest.mark.needs("faketime", "busybox")
def test_a_static_binary_is_refused_and_nothing_is_injected(tmp_path: Path,
                                                            state_dir: Path) -> None:
    path = tmp_path / "static.yaml"
    path.write_text("""title: static
services:
  - name: static
    run: [busybox, sleep, "60"]
faults:
  - type: time.skew
    target: {service: static}
    with: {offset: +1h}
    duration: 5s
""")
    result = run_chaos("run", "-q", str(path), timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "libfaketime is not loaded" in out and "static" in out and "Traceback" not in out


@pytest.mark.parametrize(("target", "offset", "message"), [
    ("{process: {name: nginx}}", "+1h", "time.skew cannot target a process"),
    ("{service: clock}", "2h", "expected a string matching"),
    ("{service: clock}", "+1.5h", "expected a string matching"),
])
def test_bad_clock_faults_are_refused_at_their_line(tmp_path: Path, target: str, offset: str,
                                                    message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"""title: bad skew
services:
  - name: clock
    run: [sleep, "60"]
faults:
  - type: time.skew
    target: {target}
    with: {{offset: "{offset}"}}
    duration: 5s
""")
    result = run_chaos("validate", str(path))
    out = result.stdout + result.stderr
    assert result.returncode == 2 and message in out and f"{path}:" in out, out
