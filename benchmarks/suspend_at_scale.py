"""Suspending many processes at once: how long after a fault's start they are all stopped, how
long after its end they all run again, and how fast the watchdog resumes them all when the
runner is SIGKILLed - against a bare `kill -STOP` loop over the same pids.

    .venv/bin/python benchmarks/suspend_at_scale.py [--targets 1000] [--trials 3] [--hold 2]
        [--label after]

Each trial:
  1. starts N `sleep` processes whose argument is a marker unique to the trial (tiny, own session);
  2. writes an experiment that suspends every one of them (`process.suspend`, selector
     `cmdline: marker`, starting 1 s into the run for `--hold` seconds, default 2; it must be
     longer than stopping them all takes, or no moment has them all stopped), `max_targets: N`,
     no hypothesis, and starts `.venv/bin/chaos run -q FILE` with a fresh state and runs dir;
  3. polls /proc/PID/stat, highest pid first, stopping each sweep at the first pid not yet
     stopped (then: not yet running again), until all are; the wall clock is stamped when the
     last one is seen (the longest gap between two looks, the resolution, is printed);
  4. "stop" = all stopped − the fault's start (the journal's `phase.started during` wall-clock
     `ts` + the fault's `start`); "resume" = all running − the fault's planned end;
  5. a second run holds the fault for 60 s; once all are stopped the runner gets SIGKILL and
     "watchdog" = all running − the kill.
After every run the script checks that nothing is left: all targets run and `chaos status
--json` lists no open injection. Every process started here is resumed and killed in a `finally`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHAOS = REPO / ".venv" / "bin" / "chaos"
GOALS_MS = {"stop": 100.0, "resume": 100.0, "watchdog": 200.0}
EXPERIMENT = """\
title: suspend at scale ({n} targets)
faults:
  - name: freeze-all
    type: process.suspend
    target: {{process: {{cmdline: '{marker}'}}}}
    start: {start}s
    duration: {duration}s
limits: {{max_duration: 5m, max_targets: {n}}}
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    end = data.rindex(b")")
    return data[end + 2:end + 3].decode()


def wait_all(pids: list[int], stopped: bool, timeout: float) -> tuple[float, float]:
    """(wall-clock time the last pid was seen in the wanted state, longest gap between two
    looks at it in s). Each sweep stops at the first pid not there yet (highest pid first:
    the runner goes by pid), so while waiting it reads one file, not a thousand: the poll
    neither hides the moment nor takes the runner's core. Every pid is checked in the end."""
    left = sorted(pids, reverse=True)
    deadline = time.monotonic() + timeout
    longest, seen, last_look = 0.0, 0.0, time.monotonic()
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(left)} of {len(pids)} never "
                               f"{'stopped' if stopped else 'resumed'}")
        done = 0
        for pid in left:
            if (proc_state(pid) == "T") != stopped:
                break
            if done == 0:
                seen = time.time()  # the pid that held us up is there now
            done += 1
        now = time.monotonic()
        longest, last_look = max(longest, now - last_look), now
        left = left[done:]
        if not left:
            return seen, longest
        time.sleep(0.0005)


def spawn_targets(n: int, marker: str) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen(["sleep", marker], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True) for _ in range(n)]


def cleanup(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
    for proc in procs:
        proc.wait(10)


def check_nothing_left(env: dict[str, str], pids: list[int]) -> None:
    wait_all(pids, stopped=False, timeout=30)
    status = subprocess.run([str(CHAOS), "status", "--json"], env=env, capture_output=True,
                            text=True, timeout=60, check=True)
    assert json.loads(status.stdout)["injections"] == [], status.stdout


def fault_start(journal: dict[str, object], start: float) -> float:
    events = journal["events"]
    assert isinstance(events, list)
    during = next(e for e in events if e["event"] == "phase.started"
                  and e["phase"] == "during")
    return float(during["ts"]) + start


def trial(n: int, work: Path, *, kill_runner: bool, hold: float) -> dict[str, float]:
    marker = f"{n}.{uuid.uuid4().int % 10**9:09d}"  # `sleep 1000.123456789`: a unique argv
    work.mkdir(parents=True)
    env = {**os.environ, "CHAOS_STATE_DIR": str(work / "state"),
           "CHAOS_RUNS_DIR": str(work / "runs")}
    start, duration = 1.0, (60.0 if kill_runner else hold)
    path = work / "experiment.yaml"
    path.write_text(EXPERIMENT.format(n=n, marker=marker.replace(".", r"\."), start=start,
                                      duration=duration))
    procs = spawn_targets(n, marker)
    pids = [p.pid for p in procs]
    runner = None
    try:
        runner = subprocess.Popen([str(CHAOS), "run", "-q", str(path)], env=env, cwd=work,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            stopped_at, sweep_stop = wait_all(pids, stopped=True, timeout=120)
        except TimeoutError:
            runner.kill()
            log(runner.communicate()[0].decode()[-3000:])
            raise
        if kill_runner:
            time.sleep(0.3)  # the runner now holds the fault
            killed = time.time()
            runner.kill()
            resumed_at, sweep_resume = wait_all(pids, stopped=False, timeout=60)
            runner.wait(30)
            check_nothing_left(env, pids)
            return {"watchdog": resumed_at - killed, "sweep": max(sweep_stop, sweep_resume)}
        resumed_at, sweep_resume = wait_all(pids, stopped=False, timeout=60)
        out, _ = runner.communicate(timeout=120)
        assert runner.returncode == 0, out.decode()
        journal = json.loads(next((work / "runs").glob("*/journal.json")).read_text())
        begin = fault_start(journal, start)
        check_nothing_left(env, pids)
        return {"stop": stopped_at - begin, "resume": resumed_at - (begin + duration),
                "sweep": max(sweep_stop, sweep_resume)}
    finally:
        if runner is not None and runner.poll() is None:
            runner.kill()
            runner.wait(30)
        cleanup(procs)


def bare_loop(n: int) -> float:
    procs = spawn_targets(n, f"{n}.{uuid.uuid4().int % 10**9:09d}")
    try:
        begin = time.perf_counter()
        for proc in procs:
            os.kill(proc.pid, signal.SIGSTOP)
        took = time.perf_counter() - begin
        for proc in procs:
            os.kill(proc.pid, signal.SIGCONT)
        return took
    finally:
        cleanup(procs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--label", default="this tree", help="row label (e.g. before/after)")
    parser.add_argument("--hold", type=float, default=2.0,
                        help="the fault's duration in s (longer than it takes to stop them all)")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"stop": [], "resume": [], "watchdog": [], "sweep": []}
    bare = [bare_loop(args.targets) for _ in range(args.trials)]
    with tempfile.TemporaryDirectory(prefix="chaos-bench-scale-") as tmp:
        for i in range(args.trials):
            for kill in (False, True):
                log(f"trial {i + 1}/{args.trials}: {'runner killed' if kill else 'full run'}")
                got = trial(args.targets, Path(tmp) / f"{i}-{kill}", kill_runner=kill,
                            hold=args.hold)
                for key, value in got.items():
                    results[key].append(value)
    load = os.getloadavg()[0]
    print(f"## Suspending {args.targets} processes ({args.label}; {args.trials} trials, "
          f"load {load:.1f}, {os.cpu_count()} cores)\n")
    print("| metric | median ms | worst ms | goal ms |")
    print("|---|---|---|---|")
    print(f"| bare `kill -STOP` loop | {statistics.median(bare) * 1e3:.1f} | "
          f"{max(bare) * 1e3:.1f} | |")
    names = {"stop": "all stopped after the fault's start",
             "resume": "all running after the fault's end",
             "watchdog": "all running after SIGKILL of the runner (watchdog)"}
    for key, name in names.items():
        values = results[key]
        print(f"| {name} | {statistics.median(values) * 1e3:.1f} | {max(values) * 1e3:.1f} | "
              f"≤ {GOALS_MS[key]:.0f} |")
    print(f"\n/proc poll resolution: worst {max(results['sweep']) * 1e3:.1f} ms; nothing left "
          "behind after any run (all targets running, no open ledger entry).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
