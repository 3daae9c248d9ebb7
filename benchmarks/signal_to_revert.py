"""Signal-to-reverted latency of `chaos run`: how fast a suspended process runs again after
SIGINT / SIGTERM to the runner, or after SIGKILL of the runner (the watchdog reverts).

    .venv/bin/python benchmarks/signal_to_revert.py [--trials 20] [--signals INT,TERM,KILL]

Each trial:
  1. starts a harmless target (a Python sleep loop, its own session);
  2. writes an experiment that suspends it (`process.suspend`, `target: {process: {pid: N}}`,
     60 s, no hypothesis) and starts `.venv/bin/chaos run -q FILE` with CHAOS_STATE_DIR and the
     runs dir in a fresh temp dir;
  3. waits until /proc/TARGET/stat says `T` (stopped), then `--settle` more (default 0.3 s, so
     the runner is holding the fault, not still writing its ledger);
  4. sends the signal to the runner and polls /proc/TARGET/stat every `--poll` (1 ms) until the
     state is no longer `T` (= reverted), and the runner until it exits (exit code recorded);
  5. checks that nothing is left: the target runs, `chaos status --json` lists no open
     injection, and the watchdog has exited.
Every loop is bounded; every process started here (target, runner, its watchdog) is resumed and
ended in a `finally`, also on failure or Ctrl-C of the benchmark.

Times are measured from just before os.kill() on the runner. "revert" is the goal metric
(≤ 250 ms). "inject" is runner spawn → target stopped (interpreter start, imports, watchdog
spawn, ledger fsyncs), shown for context.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHAOS = REPO / ".venv" / "bin" / "chaos"
GOAL_MS = 250.0
EXPECTED_EXIT = {"INT": 130, "TERM": 143, "KILL": -signal.SIGKILL}

TARGET_CODE = "import time\nwhile True:\n    time.sleep(0.01)\n"
# Burns one CPU; ends itself when the benchmark is gone (re-parented) or after an hour.
BURNER_CODE = """\
import os, sys, time
parent, end = int(sys.argv[1]), time.time() + 3600
while os.getppid() == parent and time.time() < end:
    for _ in range(100_000):
        pass
"""
EXPERIMENT = """\
title: signal-to-revert benchmark (trial {trial})
faults:
  - name: freeze
    type: process.suspend
    target: {{process: {{pid: {pid}}}}}
    duration: 60s
limits: {{max_duration: 5m, max_targets: 1}}
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/PID/stat, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "pid (comm) S ..." - comm may contain spaces or parentheses: split at the last ')'
    return data[data.rindex(b")") + 2:data.rindex(b")") + 3].decode()


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def find_watchdog(runner_pid: int) -> int | None:
    """The watchdog of this runner: `python -m chaos.safety.watchdog ... --runner-pid N`."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = cmdline(int(entry))
        if "chaos.safety.watchdog" in argv and "--runner-pid" in argv:
            i = argv.index("--runner-pid")
            if i + 1 < len(argv) and argv[i + 1] == str(runner_pid):
                return int(entry)
    return None


def alive(pid: int | None) -> bool:
    return pid is not None and proc_state(pid) not in (None, "Z", "X")


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float) -> float | None:
    """Seconds until predicate() is true, polling every `poll`; None on timeout."""
    start = time.perf_counter()
    while True:
        if predicate():
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            return None
        time.sleep(poll)


@dataclass
class Trial:
    signal: str
    inject_s: float | None = None
    revert_s: float | None = None
    exit_s: float | None = None
    exit_code: int | None = None
    watchdog_exit_s: float | None = None
    left_open: int | None = None
    problems: list[str] = field(default_factory=list)


def open_injections(state_dir: Path, env: dict[str, str]) -> int | None:
    proc = subprocess.run([str(CHAOS), "status", "--json"], env=env, capture_output=True,
                          text=True, check=False, timeout=30, cwd=REPO)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None
    if isinstance(data, dict):
        data = data.get("injections", data.get("active", []))
    return len(data) if isinstance(data, list) else None


def run_trial(n: int, sig: str, root: Path, args: argparse.Namespace) -> Trial:
    trial = Trial(sig)
    work = root / f"{sig.lower()}-{n:03d}"
    work.mkdir()
    env = dict(os.environ, CHAOS_STATE_DIR=str(work / "state"),
               CHAOS_RUNS_DIR=str(work / "runs"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as a user runs it: with cached bytecode
    target = runner = None
    watchdog: int | None = None
    try:
        target = subprocess.Popen([sys.executable, "-c", TARGET_CODE], start_new_session=True,
                                  stdin=subprocess.DEVNULL)
        experiment = work / "experiment.yaml"
        experiment.write_text(EXPERIMENT.format(trial=n, pid=target.pid))
        with open(work / "runner.log", "wb") as out:
            t_spawn = time.perf_counter()
            runner = subprocess.Popen(
                [str(CHAOS), "run", "-q", str(experiment), "--runs-dir", str(work / "runs")],
                env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        waited = wait_until(lambda: proc_state(target.pid) == "T" or runner.poll() is not None,
                            args.timeout, args.poll)
        if waited is None or proc_state(target.pid) != "T":
            trial.problems.append("target never stopped: "
                                  + (work / "runner.log").read_text(errors="replace")[-400:])
            return trial
        trial.inject_s = time.perf_counter() - t_spawn
        time.sleep(args.settle)
        watchdog = find_watchdog(runner.pid)
        if watchdog is None:
            trial.problems.append("no watchdog process found for the runner")

        # --- the measurement
        t0 = time.perf_counter()
        os.kill(runner.pid, getattr(signal, "SIG" + sig))
        deadline = t0 + args.timeout
        while time.perf_counter() < deadline:
            now = time.perf_counter()
            if trial.revert_s is None and proc_state(target.pid) != "T":
                trial.revert_s = now - t0
            if trial.exit_s is None and runner.poll() is not None:
                trial.exit_s, trial.exit_code = now - t0, runner.returncode
            if trial.watchdog_exit_s is None and not alive(watchdog):
                trial.watchdog_exit_s = now - t0
            if None not in (trial.revert_s, trial.exit_s, trial.watchdog_exit_s):
                break
            time.sleep(args.poll)
        if trial.revert_s is None:
            trial.problems.append(f"target still stopped {args.timeout:g}s after SIG{sig}")
        if trial.exit_s is None:
            trial.problems.append(f"runner still running {args.timeout:g}s after SIG{sig}")
        elif trial.exit_code != EXPECTED_EXIT[sig]:
            trial.problems.append(f"runner exit {trial.exit_code}, expected {EXPECTED_EXIT[sig]}")
        if trial.watchdog_exit_s is None:
            trial.problems.append(f"watchdog {watchdog} still running {args.timeout:g}s later")
        if args.check_status:
            trial.left_open = open_injections(work / "state", env)
            if trial.left_open:
                trial.problems.append(f"`chaos status` lists {trial.left_open} open injection(s)")
        if trial.problems:
            tail = (work / "runner.log").read_text(errors="replace")[-600:]
            trial.problems.append(f"runner output (tail): {tail!r}")
        return trial
    finally:
        for pid in (target.pid if target else None, watchdog):
            if pid is not None and alive(pid):
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        if runner is not None and runner.poll() is None:
            runner.send_signal(signal.SIGTERM)  # let it revert and clean up
            try:
                runner.wait(10)
            except subprocess.TimeoutExpired:
                runner.kill()
                runner.wait(10)
        if watchdog is not None and alive(watchdog) and wait_until(lambda: not alive(watchdog), 5.0, 0.01) is None:
            try:
                os.kill(watchdog, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if target is not None:
            target.kill()
            target.wait(10)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def row(label: str, values: list[float], goal: str = "") -> str:
    if not values:
        return f"| {label} | 0 | - | - | - | - | {goal} |"
    ms = [v * 1000 for v in values]
    return (f"| {label} | {len(ms)} | {min(ms):.1f} | {statistics.median(ms):.1f} | "
            f"{pct(ms, 95):.1f} | {max(ms):.1f} | {goal} |")


def stop_burners(burners: list[subprocess.Popen[bytes]]) -> None:
    for proc in burners:
        proc.kill()
        proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per signal (20)")
    parser.add_argument("--signals", default="INT,TERM,KILL",
                        help="comma-separated, of INT, TERM, KILL (default: all)")
    parser.add_argument("--settle", type=float, default=0.3,
                        help="seconds between the target stopping and the signal (0.3)")
    parser.add_argument("--poll", type=float, default=0.001, help="poll interval, s (0.001)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="bound on every wait, s (30)")
    parser.add_argument("--cpu-burners", type=int, default=0,
                        help="busy-loop processes to run meanwhile (contention; default 0)")
    parser.add_argument("--no-status-check", dest="check_status", action="store_false",
                        help="skip `chaos status` after each trial")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    signals = [s.strip().upper().removeprefix("SIG") for s in args.signals.split(",") if s]
    for s in signals:
        if s not in EXPECTED_EXIT:
            parser.error(f"unknown signal {s}; use INT, TERM, KILL")
    if not CHAOS.exists():
        parser.error(f"{CHAOS} not found: create the venv and `pip install -e .` first")

    def terminated(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through every `finally`: nothing is left

    signal.signal(signal.SIGTERM, terminated)
    results: dict[str, list[Trial]] = {s: [] for s in signals}
    burners: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as stack:
        stack.callback(stop_burners, burners)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="chaos-bench-signal-"))
        for _ in range(args.cpu_burners):
            burners.append(subprocess.Popen([sys.executable, "-c", BURNER_CODE, str(os.getpid())],
                                            start_new_session=True))
        root = Path(tmp)
        for n in range(args.trials):  # interleave the signals: drift hits all alike
            for sig in signals:
                trial = run_trial(n, sig, root, args)
                results[sig].append(trial)
                status = "ok" if not trial.problems else "PROBLEM"
                revert = f"{trial.revert_s * 1000:.1f} ms" if trial.revert_s is not None else "-"
                log(f"trial {n + 1}/{args.trials} SIG{sig}: revert {revert}, "
                    f"exit {trial.exit_code} {status}")
                for p in trial.problems:
                    log(f"    {p}")

    print("## Signal-to-reverted latency of `chaos run`\n")
    print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs "
          f"(1-min load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after), {args.trials} trials "
          f"per signal{f', {args.cpu_burners} CPU burner(s) running' if args.cpu_burners else ''}, "
          f"/proc polled every {args.poll * 1000:g} ms, signal sent "
          f"{args.settle:g} s after the target stopped. Goal: revert ≤ {GOAL_MS:g} ms.\n")
    print("| signal → measured | n | min ms | median ms | p95 ms | max ms | goal |")
    print("|---|---:|---:|---:|---:|---:|---|")
    failures = 0
    for sig in signals:
        trials = results[sig]
        reverts = [t.revert_s for t in trials if t.revert_s is not None]
        who = "watchdog" if sig == "KILL" else "runner"
        goal = ""
        if reverts:
            goal = f"p95 {'met' if pct(reverts, 95) * 1000 <= GOAL_MS else 'NOT met'}"
        print(row(f"SIG{sig} → target running again (reverted by the {who})", reverts, goal))
        if sig != "KILL":
            print(row(f"SIG{sig} → runner exited", [t.exit_s for t in trials
                                                     if t.exit_s is not None]))
        print(row(f"SIG{sig} → watchdog exited", [t.watchdog_exit_s for t in trials
                                                  if t.watchdog_exit_s is not None]))
    inject = [t.inject_s for s in signals for t in results[s] if t.inject_s is not None]
    print(row("(context) runner spawn → target stopped", inject))
    print()
    print("| signal | exit codes (expected) | trials with a problem | open injections after |")
    print("|---|---|---:|---|")
    for sig in signals:
        trials = results[sig]
        codes: dict[str, int] = {}
        for t in trials:
            codes[str(t.exit_code)] = codes.get(str(t.exit_code), 0) + 1
        bad = sum(1 for t in trials if t.problems)
        failures += bad
        opened = [t.left_open for t in trials if t.left_open is not None]
        left = "not checked" if not args.check_status else (
            f"{sum(opened)} in {len(opened)} checked trials" if opened else "status unreadable")
        print(f"| SIG{sig} | {', '.join(f'{c}×{k}' for k, c in sorted(codes.items()))} "
              f"({EXPECTED_EXIT[sig]}) | {bad} | {left} |")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # every trial's `finally` has run: its processes are gone
        log("interrupted; every process started here was resumed and ended")
        sys.exit(130)
