"""Inject and revert times of the in-pod agent, run for real in a network namespace (root only).

    .venv/bin/python benchmarks/inpod_agent.py [--trials 10]

The agent is what an ephemeral container runs; the cluster's share (API round trips, image pull,
container start) is not in these numbers. Each trial, per fault:
  1. `ip netns exec NS python -m chaos.adapters.kubernetes.inpod_agent hold ...` is started;
     "inject" = process start -> its `ready` line (interpreter start, imports, checks, tc/nft or
     worker start);
  2. `stop` (the same arguments) is run from a second process in the namespace; "revert" = its
     start -> its exit (interpreter start, the agent's own revert over the abstract socket, the
     idempotent leftover check), "agent revert" = the agent's exit after the stop was sent;
  3. the namespace's `tc qdisc show` and `nft list ruleset` are compared with their snapshot.
The namespace (loopback only, 127.0.0.1) is deleted at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

AGENT = [sys.executable, "-m", "chaos.adapters.kubernetes.inpod_agent"]
FAULTS = {
    "network.bandwidth (tbf)": ("network.bandwidth", {"device": "lo"}, {"rate": 1 << 20}),
    "network.loss (nft)": ("network.loss", {"device": "lo", "port": 9, "protocol": "udp"},
                           {"percent": 0.3}),
    "resource.cpu (1 worker)": ("resource.cpu", {}, {"load": 0.2, "cores": 1, "pin": False,
                                                     "ramp": 0.0}),
}


def state(ns: str) -> str:
    return "\n".join(subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True,
                                    text=True, timeout=10, check=True).stdout
                     for argv in (["tc", "qdisc", "show"], ["nft", "list", "ruleset"]))


def trial(ns: str, fault: str, target: dict[str, object], params: dict[str, object]
          ) -> tuple[float, float, float]:
    ident = uuid.uuid4().hex[:12]
    args = ["--id", ident, "--deadline", f"{time.time() + 120:.3f}", "--max-for", "130",
            "--fault", fault, "--target", json.dumps(target), "--with", json.dumps(params)]
    start = time.perf_counter()
    agent = subprocess.Popen(["ip", "netns", "exec", ns, *AGENT, "--report", os.devnull, "hold",
                              *args], stdout=subprocess.PIPE, text=True)
    try:
        assert agent.stdout is not None
        line = agent.stdout.readline()
        injected = time.perf_counter() - start
        if not line.startswith("ready"):
            raise SystemExit(f"{fault}: the agent did not start: {line.strip()}")
        start = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", ns, *AGENT, "--report", os.devnull, "stop",
                        *args], capture_output=True, timeout=60, check=True)
        reverted = time.perf_counter() - start
        agent.wait(30)
        agent_done = time.perf_counter() - start
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(10)
        if agent.stdout is not None:
            agent.stdout.close()
    return injected, reverted, agent_done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    opts = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (ip netns add)")
    ns = f"chaos-bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, timeout=10)
        snapshot = state(ns)
        print(f"In-pod agent, {opts.trials} trials per fault, in a network namespace "
              f"(kernel {os.uname().release}, {os.cpu_count()} CPUs)\n")
        print("| fault | inject p50 | inject max | revert (stop) p50 | revert max "
              "| agent ended after stop p50 | left behind |")
        print("|---|---|---|---|---|---|---|")
        for label, (fault, target, params) in FAULTS.items():
            rows = []
            for n in range(opts.trials):
                print(f"{label}: trial {n + 1}", file=sys.stderr)
                rows.append(trial(ns, fault, target, params))
            inject, revert, ended = (sorted(col) for col in zip(*rows))
            clean = "nothing" if state(ns) == snapshot else "SOMETHING (see tc/nft)"
            print(f"| {label} | {statistics.median(inject) * 1e3:.0f} ms | "
                  f"{inject[-1] * 1e3:.0f} ms | {statistics.median(revert) * 1e3:.0f} ms | "
                  f"{revert[-1] * 1e3:.0f} ms | {statistics.median(ended) * 1e3:.0f} ms | "
                  f"{clean} |")
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, timeout=10)


if __name__ == "__main__":
    main()
