"""Probes while the service hangs: samples taken and time to a guardrail, open vs closed loop.

    .venv/bin/python benchmarks/probes_during_a_freeze.py [--trials 3]

1. In-process: the bundled demo service is frozen (SIGSTOP) for 3 s by this script while an http
   probe (`every: 250ms`, `timeout: 1s`) is sampled by chaos.slo.sampler (open loop) and by a
   closed loop (ask, wait, ask: what the sampler did before issue 12). Reports the samples sent
   during the freeze (the schedule asks for 12) and when `home < 50%` over a 3 s window (at
   least 2 samples, the guardrail's rule) would first hold, replayed on the answers as they
   arrived.
2. Real `chaos run`s of the quickstart with `abort: [home < 50%]`: the exit code and how long the
   demo process stayed stopped, per /proc (the fault is planned for 3 s).

Markdown on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from chaos.slo.checks import Sample
from chaos.slo.probes import Probe
from chaos.slo.sampler import Sampler

ROOT = Path(__file__).resolve().parents[1]
EVERY, TIMEOUT, FREEZE, LEAD = 0.25, 1.0, 3.0, 1.0

EXPERIMENT = """title: quickstart, guarded
services:
  - name: demo
    run: ["${{python}}", -m, chaos.demo.service, --port, "{port}"]
    ready: {{http: "http://127.0.0.1:{port}/health", timeout: 30s}}
hypothesis:
  probes:
    - name: home
      http: {{url: "http://127.0.0.1:{port}/", status: [200], timeout: 1s}}
  checks: [home >= 99%, home.latency.p95 < 500ms]
  before: {{window: 3s, every: 250ms}}
  during: {{every: 250ms, abort: [home < 50%]}}
  after: {{settle: 1s, window: 3s, recover_within: 5s}}
faults:
  - {{name: freeze-demo, type: process.suspend, target: {{service: demo}}, start: 1s,
     duration: 3s}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_demo(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "chaos.demo.service", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the demo service did not start")


async def closed_loop(probe: Probe, samples: list[Sample]) -> None:
    while True:
        samples.append(await probe.sample())
        await asyncio.sleep(max(0.0, EVERY - samples[-1].latency))


async def one_trial(open_loop: bool) -> tuple[int, float | None]:
    port = free_port()
    demo = start_demo(port)
    probe = Probe("home", "http", {"url": f"http://127.0.0.1:{port}/", "timeout": TIMEOUT})
    samples: list[Sample] = []
    try:
        if open_loop:
            sampler = Sampler([probe], lambda s: None, lambda e: None)
            sampler.start(EVERY)
            samples = sampler.samples
            task = None
        else:
            task = asyncio.create_task(closed_loop(probe, samples))
        await asyncio.sleep(LEAD)
        os.kill(demo.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        await asyncio.sleep(FREEZE)
        os.kill(demo.pid, signal.SIGCONT)
        resumed = time.monotonic()
        await asyncio.sleep(TIMEOUT + 0.5)
        if open_loop:
            await sampler.stop()
        elif task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        os.kill(demo.pid, signal.SIGCONT)
        demo.terminate()
        demo.wait(10)
    during = sum(frozen <= s.at < resumed for s in samples)
    return during, guardrail_trips(samples, frozen)


def guardrail_trips(samples: list[Sample], frozen: float) -> float | None:
    """Seconds after the freeze at which `home < 50%` over the last 3 s first holds."""
    arrived = sorted(samples, key=lambda s: s.at + s.latency)
    start = frozen - LEAD  # the during phase
    for s in arrived:
        now = s.at + s.latency
        if now < frozen:
            continue
        recent = [r for r in arrived if max(start, now - 3.0) <= r.at and r.at + r.latency <= now]
        if len(recent) >= 2 and sum(r.ok for r in recent) / len(recent) < 0.5:
            return now - frozen
    return None


def cli_trial(tmp: Path) -> tuple[int, float | None]:
    port = free_port()
    path = tmp / f"guarded-{port}.yaml"
    path.write_text(EXPERIMENT.format(port=port))
    env = {**os.environ, "CHAOS_STATE_DIR": str(tmp / "state"),
           "CHAOS_RUNS_DIR": str(tmp / "runs")}
    runner = subprocess.Popen([sys.executable, "-m", "chaos", "run", str(path)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    pid = None
    while runner.poll() is None and pid is None:
        pid = next((p.pid for p in psutil.process_iter(["cmdline"])
                    if f"--port {port}" in " ".join(p.info["cmdline"] or ())), None)
        time.sleep(0.02)
    stopped = resumed = None
    while runner.poll() is None and pid is not None:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            break
        state, now = text[text.rindex(")") + 2], time.monotonic()
        if state in "Tt" and stopped is None:
            stopped = now
        elif state not in "Tt" and stopped is not None and resumed is None:
            resumed = now
        time.sleep(0.005)
    runner.wait(120)
    frozen_for = None if stopped is None or resumed is None else resumed - stopped
    return runner.returncode, frozen_for


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for open_loop in (True, False):
        results = []
        for i in range(args.trials):
            print(f"{'open' if open_loop else 'closed'} loop, trial {i + 1}", file=sys.stderr)
            results.append(asyncio.run(one_trial(open_loop)))
        counts = [c for c, _ in results]
        trips = [t for _, t in results]
        shown = [f"{t:.2f} s" if t is not None else "never" for t in trips]
        rows.append((("open (chaos.slo.sampler)" if open_loop else "closed (before #12)"),
                     f"{statistics.median(counts):g} (of {FREEZE / EVERY:g})",
                     ", ".join(shown)))
    print(f"## Probe `every: {EVERY * 1000:g}ms, timeout: {TIMEOUT:g}s`, demo frozen for "
          f"{FREEZE:g} s ({args.trials} trials)\n")
    print("| sampling | samples sent during the freeze (median) | `home < 50%` holds after |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for i in range(args.trials):
            print(f"chaos run, trial {i + 1}", file=sys.stderr)
            runs.append(cli_trial(Path(tmp)))
    print("\n## `chaos run` of the quickstart with `abort: [home < 50%]` (fault planned for 3 s)\n")
    print("| trial | exit code | demo stopped for (per /proc) |")
    print("|---|---|---|")
    for i, (code, frozen_for) in enumerate(runs, 1):
        print(f"| {i} | {code} | "
              f"{'-' if frozen_for is None else f'{frozen_for:.2f} s'} |")


if __name__ == "__main__":
    main()
