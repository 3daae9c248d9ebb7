"""`chaos run` as a person sees it on a terminal (a real pty) and as CI sees it (a pipe): the
status line redrawn in place, colour only on a terminal, the total line after several files,
--tag/--exclude-tag selection and -x.

Each run is the real CLI in its own process against the bundled demo service; what the user
saw is read back from the pty's bytes through a screen model (tests/support/terminal.py).
"""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import psutil

from tests.conftest import ROOT, free_port, run_chaos
from tests.support.terminal import SGR, Screen, on_pty

GREEN, RED = b"\x1b[32m", b"\x1b[31m"


def experiment(path: Path, target: int, *, hold: str = "3s") -> Path:
    """Traffic to the demo service, a guardrail, and a harmless process frozen for `hold`."""
    port = free_port()
    path.write_text(f"""title: live view
services:
  - name: demo
    run: ["{sys.executable}", -m, chaos.demo.service, --port, "{port}"]
    ready: {{http: "http://127.0.0.1:{port}/health", timeout: 30s}}
hypothesis:
  traffic: {{http: {{url: "http://127.0.0.1:{port}/", rate: 20/s, timeout: 2s, max_lag: 1s}}}}
  checks: [availability >= 99%]
  before: {{window: 2s}}
  during: {{every: 500ms, abort: [availability < 10%]}}
  after: {{window: 1s}}
faults:
  - type: process.suspend
    target: {{process: {{pid: {target}}}}}
    start: 0s
    duration: {hold}
limits: {{max_duration: 2m}}
""")
    return path


def quiet_experiment(path: Path, *, title: str, tags: str = "[demo]",
                     healthy: bool = True) -> Path:
    """No faults: a quick hypothesis-only run; unhealthy, the probe expects a status the
    service never answers (the steady state is not met: exit 3)."""
    port = free_port()
    path.write_text(f"""title: {title}
tags: {tags}
services:
  - name: demo
    run: ["{sys.executable}", -m, chaos.demo.service, --port, "{port}"]
    ready: {{http: "http://127.0.0.1:{port}/health", timeout: 30s}}
hypothesis:
  probes:
    - name: home
      http: {{url: "http://127.0.0.1:{port}/", status: [{200 if healthy else 500}],
              timeout: 2s}}
  checks: [home >= 99%]
  before: {{window: 1s, every: 100ms}}
""")
    return path


def test_a_terminal_shows_a_status_line_redrawn_in_place_and_nothing_stale(
        tmp_path: Path, state_dir: Path, sleeper: psutil.Process) -> None:
    path = experiment(tmp_path / "live.yaml", sleeper.pid, hold="4s")
    run = on_pty([sys.executable, "-m", "chaos", "run", str(path)], cwd=str(ROOT), columns=150)
    screen = Screen.of(run.output)
    assert run.returncode == 0, run.text
    status = [f for f in screen.frames if f.startswith(">> ")]
    assert any(re.match(r">> before\s+\d+s left", f) for f in status), status
    during = [f for f in status if f.startswith(">> during")]
    assert any(re.search(r"last 5s: availability \d+\.\d%, p95 \d+ms", f) and
               re.search(r"abort if availability < 10%: \d+\.\d pts to spare", f) and
               re.search(r"1 fault active, next revert in \d+s", f)
               for f in during), status
    assert all(len(f) < 150 for f in status)  # fitted to the terminal: never wraps
    # what is left on screen: the event lines and the summary, no half-overwritten status line
    assert not any(">>" in line for line in screen.lines), screen.text
    assert re.search(r"INJECTED process.suspend .* \(id \S+\)", screen.text)
    assert "verdict: HYPOTHESIS HELD" in screen.text


def test_a_narrow_terminal_gets_a_status_line_cut_to_fit(
        tmp_path: Path, state_dir: Path, sleeper: psutil.Process) -> None:
    path = experiment(tmp_path / "narrow.yaml", sleeper.pid, hold="2s")
    run = on_pty([sys.executable, "-m", "chaos", "run", str(path)], cwd=str(ROOT), columns=60)
    status = [f for f in Screen.of(run.output).frames if f.startswith(">> ")]
    assert status and all(len(f) <= 59 for f in status), status
    assert any(f.endswith("...") for f in status), status


def test_piped_output_is_plain_event_lines_without_colour_or_redraws(
        tmp_path: Path, state_dir: Path, sleeper: psutil.Process) -> None:
    path = experiment(tmp_path / "piped.yaml", sleeper.pid, hold="1s")
    result = run_chaos("run", str(path))
    assert "\r" not in result.stderr + result.stdout
    assert "\x1b[" not in result.stderr + result.stdout
    assert "phase during" in result.stderr
    assert "PASS" in result.stderr  # the check lines are there, uncoloured
    assert ">> " not in result.stderr


def test_colour_on_a_terminal_and_off_with_no_color_or_the_flag(
        tmp_path: Path, state_dir: Path) -> None:
    held = quiet_experiment(tmp_path / "held.yaml", title="holds")
    argv = [sys.executable, "-m", "chaos", "run", str(held)]
    coloured = on_pty(argv, cwd=str(ROOT))
    assert coloured.returncode == 0, coloured.text
    assert GREEN + b"ok  " in coloured.output  # the check mark
    assert GREEN + b"HYPOTHESIS HELD" in coloured.output
    for plain in (on_pty(argv, cwd=str(ROOT), env={"NO_COLOR": "1"}),
                  on_pty([*argv[:4], "--no-color", str(held)], cwd=str(ROOT)),
                  on_pty([*argv[:3], "--no-color", *argv[3:]], cwd=str(ROOT))):
        assert plain.returncode == 0, plain.text
        assert not SGR.search(plain.output), plain.text
        assert b"HYPOTHESIS HELD" in plain.output


def test_a_failed_hypothesis_is_red_on_a_terminal(tmp_path: Path, state_dir: Path) -> None:
    failing = quiet_experiment(tmp_path / "fails.yaml", title="fails", healthy=False)
    run = on_pty([sys.executable, "-m", "chaos", "run", str(failing)], cwd=str(ROOT))
    assert run.returncode == 3, run.text  # the steady state was not met: nothing injected
    assert RED + b"FAIL" in run.output
    assert RED + b"STEADY STATE NOT MET" in run.output


def test_several_files_end_with_one_total_line(tmp_path: Path, state_dir: Path) -> None:
    files = [quiet_experiment(tmp_path / "a.yaml", title="a"),
             quiet_experiment(tmp_path / "b.yaml", title="b", healthy=False),
             quiet_experiment(tmp_path / "c.yaml", title="c")]
    result = run_chaos("run", *map(str, files))
    assert result.returncode == 3, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"3 experiments: 2 held, 1 not steady before in \d+(\.\d)?m?s", last), last


def test_fail_fast_stops_at_the_first_experiment_that_does_not_hold(
        tmp_path: Path, state_dir: Path) -> None:
    files = [quiet_experiment(tmp_path / "a.yaml", title="first fails", healthy=False),
             quiet_experiment(tmp_path / "b.yaml", title="never runs")]
    for flag in ("-x", "--fail-fast"):
        result = run_chaos("run", flag, *map(str, files))
        assert result.returncode == 3, result.stdout + result.stderr
        assert "never runs" not in result.stdout + result.stderr
        assert re.search(r"2 experiments: 1 not steady before, 1 not run in ", result.stdout)
        runs = list((tmp_path / "runs").glob("*/journal.json"))
        assert all("never runs" not in p.read_text() for p in runs)


def test_tags_select_and_exclude_experiments(tmp_path: Path, state_dir: Path) -> None:
    quiet_experiment(tmp_path / "a.yaml", title="pre-release check", tags="[pre-release]")
    quiet_experiment(tmp_path / "b.yaml", title="slow soak", tags="[pre-release, slow]")
    quiet_experiment(tmp_path / "c.yaml", title="nightly only", tags="[nightly]")
    result = run_chaos("run", "--tag", "pre-release", "--exclude-tag", "slow", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pre-release check" in result.stdout
    assert "slow soak" not in result.stdout and "nightly only" not in result.stdout
    typo = run_chaos("run", "--tag", "pre-relase", str(tmp_path))
    assert typo.returncode == 2
    assert "selects none of the 3 experiments; did you mean pre-release?" in typo.stderr
    assert "Traceback" not in typo.stderr


def test_ctrl_c_on_a_terminal_clears_the_status_line_and_exits_130(
        tmp_path: Path, state_dir: Path, sleeper: psutil.Process) -> None:
    path = experiment(tmp_path / "long.yaml", sleeper.pid, hold="60s")
    run = on_pty([sys.executable, "-m", "chaos", "run", str(path)], cwd=str(ROOT),
                 when=lambda out: b">> during" in out, then=signal.SIGINT)
    assert run.returncode == 130, run.text
    screen = Screen.of(run.output)
    assert not any(">>" in line for line in screen.lines), screen.text
    assert sleeper.status() != psutil.STATUS_STOPPED  # reverted before the exit
