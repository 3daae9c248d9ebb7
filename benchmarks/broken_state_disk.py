"""Revert latency when the state disk breaks mid-run: does a full or read-only ledger slow down
or stop the revert? (issue 13; needs root for the tmpfs).

    .venv/bin/python benchmarks/broken_state_disk.py [--trials 5] [--targets 3]

Each trial: a tiny tmpfs is the state dir (the runs dir stays on the real disk); `chaos run`
suspends N harmless processes for 60 s; once all are stopped (/proc) and their `applied`
records are in the ledger, the disk is left healthy, turned read-only (a read-only bind over
it) or filled (after padding the ledger to a page boundary); then the runner gets SIGTERM (it
reverts itself) or SIGKILL (its watchdog reverts). Measured from just before os.kill(): the time
until every target runs again (/proc), and the runner's exit code. After each trial the disk is
repaired and `chaos recover` must leave nothing open. Prints one row per (disk, signal).
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chaos.safety.ledger import read_records  # noqa: E402
from tests.support.state_disk import state_disk  # noqa: E402

TARGET_CODE = "import time\nwhile True:\n    time.sleep(0.01)\n"


def state(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


def wait(predicate, timeout: float, every: float = 0.001) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return False


def trial(how: str, sig: signal.Signals, count: int) -> tuple[float, int | None, str]:
    with tempfile.TemporaryDirectory() as tmp, state_disk(Path(tmp) / "state") as disk:
        env = {**os.environ, "CHAOS_STATE_DIR": str(disk.path),
               "CHAOS_RUNS_DIR": str(Path(tmp) / "runs")}
        targets = [subprocess.Popen([sys.executable, "-c", TARGET_CODE]) for _ in range(count)]
        runner = None
        try:
            faults = "".join(f"  - {{name: f{i}, type: process.suspend, duration: 60s, "
                             f"target: {{process: {{pid: {t.pid}}}}}}}\n"
                             for i, t in enumerate(targets))
            path = Path(tmp) / "freeze.yaml"
            path.write_text(f"title: broken state disk benchmark\nfaults:\n{faults}")
            runner = subprocess.Popen([sys.executable, "-m", "chaos", "run", "-q", str(path)],
                                      env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            applied = lambda: sum(r["event"] == "applied" for p in disk.ledger_files()
                                  for r in read_records(p)) == count
            if not wait(lambda: all(state(t.pid) == "T" for t in targets) and applied(), 60):
                return float("nan"), None, "never injected"
            if how == "read-only":
                disk.read_only()
            elif how == "full":
                disk.pad_ledger(disk.ledger_files()[0])
                disk.fill()
            start = time.perf_counter()
            runner.send_signal(sig)
            ok = wait(lambda: all(state(t.pid) != "T" for t in targets), 60)
            took = (time.perf_counter() - start) * 1000 if ok else float("nan")
            code = runner.wait(60)
            wait(lambda: not watchdogs(disk.path), 60, 0.05)  # its last pass is done
            disk.writable() if how == "read-only" else disk.free()
            recover = subprocess.run([sys.executable, "-m", "chaos", "recover"], env=env,
                                     cwd=REPO, capture_output=True, timeout=120)
            status = subprocess.run([sys.executable, "-m", "chaos", "status", "--json"],
                                    env=env, cwd=REPO, capture_output=True, text=True,
                                    timeout=60)
            clean = status.returncode == 0 and json.loads(status.stdout or "{}").get(
                "injections") == []
            left = "clean" if recover.returncode == 0 and clean else (
                f"recover {recover.returncode}, status {status.stdout.strip()[:40]}")
            return took, code, left
        finally:
            for t in targets:
                with_suppress(lambda: os.kill(t.pid, signal.SIGCONT))
                t.kill()
                t.wait(5)
            if runner is not None:
                runner.kill()


def watchdogs(state_dir: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"chaos.safety.watchdog" in cmd and str(state_dir).encode() in cmd:
            found.append(int(proc.name))
    return found


def with_suppress(action) -> None:  # type: ignore[no-untyped-def]
    try:
        action()
    except ProcessLookupError:
        pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--targets", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (it mounts a tmpfs)", file=sys.stderr)
        return 2
    print(f"{'state disk':<10} {'signal':<7} {'revert ms p50':>13} {'max':>8} "
          f"{'exit codes':<12} after repair + chaos recover")
    for how in ("healthy", "read-only", "full"):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            rows = [trial(how, sig, args.targets) for _ in range(args.trials)]
            times = [r[0] for r in rows]
            codes = sorted({r[1] for r in rows}, key=str)
            lefts = sorted({r[2] for r in rows})
            print(f"{how:<10} {sig.name:<7} {statistics.median(times):>13.1f} "
                  f"{max(times):>8.1f} {','.join(map(str, codes)):<12} {'; '.join(lefts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
