"""Container faults on a real Docker engine: inject/revert latency per fault, 50 containers
paused and unpaused by one fault, and SIGKILL of the runner -> every container unpaused.

    .venv/bin/python benchmarks/containers.py [--trials 20] [--fleet 50] [--kills 5]
                                              [--engine docker|podman]

Uses the engine DOCKER_HOST (or /var/run/docker.sock) answers on, else starts a private dockerd
like the tests do (tests/support/docker_engine.py: own data root, socket and bridge; needs root,
docker.io and busybox-static), and the busybox test image built offline. `--engine podman`:
a private rootful Podman service on its Docker-compatible socket instead
(tests/support/podman_engine.py).

1. Per fault (container.pause, network.bandwidth = tc tbf in the container's netns,
   network.partition = an nftables table there, resource.cpu = a burner worker in its cgroup):
   the adapter's inject() and revert() timed in-process over --trials, on one container. These
   are the adapter's own costs (engine API calls, nsenter + tc/nft, worker start), without the
   runner's ledger fsyncs. Goals: pause/unpause <= 100 ms median, netns tc/nft <= 150 ms.
2. One `container.pause` on --fleet containers (label selector) through `chaos run`: from the
   first container paused to the last, and from the revert's start to the last unpaused, both
   seen from outside (`docker ps --filter status=paused`). Goal: <= 2 s each way for 50.
3. --kills times: the same fault held, the runner SIGKILLed, time until no container is
   paused (the watchdog reverts). Goal: <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chaos.adapters.registry import default_registry  # noqa: E402
from chaos.model.experiment import FaultSpec, Target, frozen  # noqa: E402
from tests.support import docker_engine, podman_engine  # noqa: E402

FAULTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "container.pause": ({}, {}),
    "network.bandwidth": ({}, {"rate": 65536}),
    "network.partition": ({"port": 8080, "protocol": "tcp"}, {}),
    "resource.cpu": ({}, {"load": 0.2, "cores": 1, "ramp": 0.0, "pin": False}),
}


class Scope:
    seed = 0
    run_id = "bench"

    def service_pid(self, name: str) -> int | None:
        return None

    async def restart_service(self, name: str, signal_name: str | None) -> None:
        return None


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    return f"{statistics.median(values) * 1000:8.1f} {p95 * 1000:8.1f} {values[-1] * 1000:8.1f}"


async def adapter_latency(name: str, trials: int) -> list[tuple[str, str, str]]:
    registry = default_registry()
    rows = []
    for fault_type, (filters, params) in FAULTS.items():
        fault = FaultSpec(index=0, name=fault_type, type=fault_type,
                          target=Target("container", frozen({"name": name, **filters})),
                          params=frozen(params), start=0.0, duration=30.0)
        adapter = registry.route(fault_type, "container")
        injects, reverts = [], []
        for _ in range(trials):
            (target,) = await adapter.resolve(fault, Scope())
            spec = adapter.prepare(fault, target)
            start = time.perf_counter()
            spec = await adapter.inject(fault, target, spec, Scope())
            injects.append(time.perf_counter() - start)
            start = time.perf_counter()
            outcome = await registry.revert(spec)
            reverts.append(time.perf_counter() - start)
            assert outcome == "reverted", (fault_type, outcome)
        rows += [(fault_type, "inject", ms(injects)), (fault_type, "revert", ms(reverts))]
    return rows


def paused(engine: docker_engine.Engine, label: str) -> int:
    out = engine.docker("ps", "-q", "--filter", f"label={label}", "--filter", "status=paused")
    return len(out.stdout.split())


def wait(predicate: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError("condition not reached")
        time.sleep(0.005)
    return time.monotonic() - start


@contextlib.contextmanager
def fleet(engine: docker_engine.Engine, size: int) -> Iterator[tuple[str, list[str]]]:
    tag = uuid.uuid4().hex[:8]
    label = f"chaos-bench={tag}"
    names = [f"chaos-bench-{tag}-{i}" for i in range(size)]
    try:
        for name in names:
            engine.run(name, "sleep", "100000", options=("--init", "--label", label))
        yield label, names
    finally:
        engine.remove(*names)


def runner(path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "chaos", "run", "-q", str(path)], env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fleet_runs(engine: docker_engine.Engine, size: int, kills: int) -> list[tuple[str, str]]:
    rows = []
    with fleet(engine, size) as (label, _), tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DOCKER_HOST": engine.host, "CHAOS_STATE_DIR": f"{tmp}/state",
               "CHAOS_RUNS_DIR": f"{tmp}/runs"}
        path = Path(tmp, "fleet.yaml")
        duration = 6
        path.write_text(f"""title: pause a fleet
faults:
  - type: container.pause
    target: {{container: {{label: "{label}"}}}}
    duration: {duration}s
limits: {{max_targets: {size}, max_duration: 5m}}
""")
        proc = runner(path, env)
        first = wait(lambda: paused(engine, label) > 0, 120)
        all_paused = wait(lambda: paused(engine, label) == size, 120)
        revert_start = wait(lambda: paused(engine, label) < size, 120)
        all_unpaused = wait(lambda: paused(engine, label) == 0, 120)
        proc.wait(60)
        rows.append((f"{size} paused (first -> last)", f"{all_paused * 1000:.0f} ms"))
        rows.append((f"{size} unpaused (first -> last)", f"{all_unpaused * 1000:.0f} ms"))
        del first, revert_start
        path.write_text(path.read_text().replace(f"{duration}s", "60s"))
        took = []
        for _ in range(kills):
            proc = runner(path, env)
            wait(lambda: paused(engine, label) == size, 120)
            time.sleep(0.3)
            start = time.monotonic()
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            took.append(time.monotonic() - start + wait(lambda: paused(engine, label) == 0,
                                                        60))
        rows.append((f"SIGKILL -> {size} unpaused (median of {kills})",
                     f"{statistics.median(took) * 1000:.0f} ms (max {max(took) * 1000:.0f})"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--fleet", type=int, default=50)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--engine", choices=("docker", "podman"), default="docker",
                        help="podman: a private rootful Podman service on its Docker-compatible "
                             "socket (tests/support/podman_engine.py)")
    args = parser.parse_args()
    support = podman_engine if args.engine == "podman" else docker_engine
    why = support.unavailable()
    if why:
        sys.exit(f"cannot run: {why}")
    with support.engine() as engine:
        os.environ["DOCKER_HOST"] = engine.host
        name = f"chaos-bench-{uuid.uuid4().hex[:8]}"
        engine.run(name, "httpd", "-f", "-p", "8080", "-h", "/www", options=("--init",))
        try:
            rows = asyncio.run(adapter_latency(name, args.trials))
        finally:
            engine.remove(name)
        print(f"\nadapter latency over {args.trials} trials (ms)")
        print(f"{'fault':22} {'step':7} {'median':>8} {'p95':>8} {'max':>8}")
        for fault_type, step, cells in rows:
            print(f"{fault_type:22} {step:7} {cells}")
        print(f"\none fault over a fleet, seen from outside (docker ps), engine {engine.host}")
        for what, value in fleet_runs(engine, args.fleet, args.kills):
            print(f"{what:40} {value}")


if __name__ == "__main__":
    main()
