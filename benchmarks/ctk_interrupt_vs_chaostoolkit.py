"""Ctrl-C-to-rollback on a Chaos Toolkit experiment with a 15 s background action: `chaos run`
(ours) vs Chaos Toolkit's own CLI, on the same file.

    .venv/bin/python benchmarks/ctk_interrupt_vs_chaostoolkit.py [--trials 5] [--ctk-trials 2]
                                                                 [--signals INT,TERM]

The experiment (written to a temp dir): a background `sleep 15`, then a foreground `sleep 15`,
and one rollback that creates a file. Chaos Toolkit runs it with `--rollback-strategy always`
(with its default strategy it plays no rollback at all when interrupted; one extra run shows
that); ours with its default strategy, which plays rollbacks on signals.

Each trial starts the runner, waits until both `sleep 15` processes exist and `--settle` more
(0.3 s), sends the signal, then polls every millisecond for the rollback's file and for the
runner's exit. Times are measured from just before os.kill(). Chaos Toolkit's CLI (whose
console script is also `chaos`) lives in benchmarks/.venv-ctk, created on first use exactly as
benchmarks/validate_vs_chaostoolkit.py does. Every process started here is ended in a
`finally`; every wait is bounded.
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
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate_vs_chaostoolkit import CTK_VENV, REPO, ensure_ctk, log, offline_env

GOAL_MS = 250.0
BOUND = 40.0  # seconds any one run may take before the benchmark gives up on it
EXIT = {"INT": (130, 1), "TERM": (143, 1)}  # (ours, Chaos Toolkit's) expected exit codes


def experiment(rollback_file: Path, marker: str) -> dict[str, object]:
    sleep = {"type": "process", "path": "sh", "arguments": ["-c", "sleep 15; true", marker]}
    return {
        "title": "A 15 s background action; Ctrl-C must roll back at once",
        "description": "benchmarks/ctk_interrupt_vs_chaostoolkit.py",
        "method": [
            {"type": "action", "name": "background-sleep", "background": True,
             "provider": sleep},
            {"type": "action", "name": "foreground-sleep", "provider": sleep},
        ],
        "rollbacks": [{"type": "action", "name": "mark-rolled-back",
                       "provider": {"type": "process", "path": "touch",
                                    "arguments": [str(rollback_file)]}}],
    }


@dataclass
class Trial:
    rollback_ms: float | None  # None: the rollback never ran
    exit_ms: float
    code: int


def sleepers(marker: str) -> int:
    count = 0
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if cmd[1:3] == ["-c", "sleep 15; true"] and marker in cmd:
            count += 1
    return count


def trial(argv: list[str], workdir: Path, sig: str, settle: float, n: int) -> Trial:
    marker = f"ctk-bench-{os.getpid()}-{n}-{time.monotonic_ns()}"
    rolled = workdir / f"rolled-back-{marker}"  # one per trial: a leftover would read as 0 ms
    path = workdir / f"experiment-{marker}.json"
    path.write_text(json.dumps(experiment(rolled, marker)))
    proc = subprocess.Popen([*argv, str(path)], cwd=workdir, env=offline_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + BOUND
        while sleepers(marker) < 2:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{argv[0]}: the sleeps never started")
            time.sleep(0.01)
        time.sleep(settle)
        start = time.perf_counter()
        os.kill(proc.pid, getattr(signal, f"SIG{sig}"))
        rollback = None
        while proc.poll() is None:
            if rollback is None and rolled.exists():
                rollback = time.perf_counter() - start
            if time.perf_counter() - start > BOUND:
                raise RuntimeError(f"{argv[0]} did not exit within {BOUND:g}s")
            time.sleep(0.001)
        ended = time.perf_counter() - start
        if rollback is None and rolled.exists():
            rollback = ended  # written just before the exit
        return Trial(None if rollback is None else rollback * 1000, ended * 1000,
                     proc.returncode)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for left in psutil.process_iter(["cmdline"]):  # abandoned sleeps, if any
            if marker in (left.info["cmdline"] or []):
                left.kill()


def row(name: str, sig: str, trials: list[Trial], expected: int) -> str:
    rolled = [t.rollback_ms for t in trials if t.rollback_ms is not None]
    exits = [t.exit_ms for t in trials]
    codes = sorted({t.code for t in trials})

    def fmt(values: list[float]) -> str:
        return f"{statistics.median(values):,.0f} ms" if values else "never"

    within = sum(1 for v in rolled if v <= GOAL_MS)
    return (f"| {name} | SIG{sig} | {fmt(rolled)} | {fmt([max(rolled)] if rolled else [])} | "
            f"{fmt(exits)} | {', '.join(map(str, codes))} (expected {expected}) | "
            f"{len(rolled)}/{len(trials)} | {within}/{len(trials)} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5, help="trials of ours per signal")
    parser.add_argument("--ctk-trials", type=int, default=2,
                        help="trials of Chaos Toolkit per signal (each takes ~15 s)")
    parser.add_argument("--signals", default="INT,TERM")
    parser.add_argument("--settle", type=float, default=0.3)
    parser.add_argument("--ctk-venv", type=Path, default=CTK_VENV)
    parser.add_argument("--ctk-spec", default="chaostoolkit")
    args = parser.parse_args()
    versions = ensure_ctk(args.ctk_venv, args.ctk_spec)
    ours = [str(REPO / ".venv" / "bin" / "chaos"), "run", "-q", "--runs-dir"]
    theirs = [str(args.ctk_venv / "bin" / "chaos"), "--no-version-check", "--no-log-file",
              "run"]
    lines = [("| runner | signal | signal → rollback ran (median) | worst | signal → exit "
              "(median) | exit code | rollback ran | within 250 ms |"),
             "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="chaos-bench-ctk-int-") as tmp:
        work = Path(tmp)
        env_state = str(work / "state")
        os.environ["CHAOS_STATE_DIR"] = env_state
        for sig in args.signals.split(","):
            log(f"SIG{sig}: ours x{args.trials}...")
            mine = [trial([*ours, str(work / "runs")], work, sig, args.settle, i)
                    for i in range(args.trials)]
            lines.append(row("chaos run (ours, default strategy)", sig, mine, EXIT[sig][0]))
            log(f"SIG{sig}: Chaos Toolkit x{args.ctk_trials} (~15 s each)...")
            ctk = [trial([*theirs, "--rollback-strategy", "always"], work, sig, args.settle,
                         100 + i) for i in range(args.ctk_trials)]
            lines.append(row("Chaos Toolkit, --rollback-strategy always", sig, ctk,
                             EXIT[sig][1]))
        log("SIGINT: Chaos Toolkit with its default strategy, once...")
        default = [trial(theirs, work, "INT", args.settle, 200)]
        lines.append(row("Chaos Toolkit, default strategy", "INT", default, EXIT["INT"][1]))
    print(f"Chaos Toolkit {versions['chaostoolkit']} (chaostoolkit-lib "
          f"{versions['chaostoolkit-lib']}), Python {versions['python']}; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
