"""Selection and injection over 1,000 pods against the Kubernetes API emulator.

    .venv/bin/python benchmarks/kubernetes_selection.py [--pods 1000] [--runs 5] > result.md

The emulator (tests/kubernetes/emulator.py: kmock over real HTTP on 127.0.0.1) runs in a child
process, so the numbers below are the client side only: the adapter's resolve (one LIST with a
label selector, then the seeded choice), pod.delete injection as the engine does it (one target
after the other), one NetworkPolicy partition, and a whole `chaos run` (ledger, watchdog) that
deletes 10% of the pods. Peak memory is tracemalloc's peak of the Python heap during the step
(the blocking client's buffers included); max RSS is the whole process's. API calls are counted
at the adapter's call boundary. Medians of --runs runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def serve(pods: int, kubeconfig: str, ready: Any, stop: Any) -> None:
    """Child process: the emulator with `pods` pods in namespace bench."""
    from tests.kubernetes.emulator import PODS, Cluster, Emulator

    emulator = Emulator(Cluster()).start()
    emulator.write_kubeconfig(Path(kubeconfig))

    def seed(cluster: Cluster) -> None:
        for i in range(pods):
            cluster.put(PODS, {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"web-{i:05d}", "namespace": "bench",
                             "labels": {"app": "web", "shard": str(i % 4)}},
                "spec": {"nodeName": f"node-{i % 10}", "containers": [{"name": "app"}]},
                "status": {"phase": "Running",
                           "conditions": [{"type": "Ready", "status": "True"}]}})

    emulator.call(seed, timeout=120)
    ready.set()
    stop.wait()
    emulator.stop()


def fault(selector: dict[str, Any], *, count: int | None = None, percent: float | None = None,
          fault_type: str = "pod.delete") -> Any:
    from chaos.model.experiment import FaultSpec, Target, frozen

    return FaultSpec(index=0, name="bench", type=fault_type,
                     target=Target("pods", frozen(selector), count, percent),
                     params=frozen({"grace_period": 0.0}), start=0.0, duration=60.0,
                     kubernetes=frozen({"namespaces": ("bench",)}))


class Scope:
    seed = 42
    run_id = "bench"


async def measure(step: Callable[[], Awaitable[Any]]) -> tuple[float, int, Any]:
    """(seconds, peak bytes, result)"""
    tracemalloc.start()
    started = time.perf_counter()
    result = await step()
    took = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return took, peak, result


async def steps(runs: int) -> list[tuple[str, float, float, str, int]]:
    from chaos.adapters.kubernetes.api import api_for
    from chaos.adapters.kubernetes.pods import PartitionAdapter, PodDeleteAdapter

    adapter = PodDeleteAdapter()
    api = api_for({"namespaces": ("bench",)})
    rows = []
    cases = [
        ("resolve all 1,000 (labels app=web)", fault({"namespace": "bench", "labels": {"app": "web"}})),
        ("resolve 10% (percent: 10%)", fault({"namespace": "bench", "labels": {"app": "web"}},
                                             percent=0.1)),
        ("resolve one (count: 1)", fault({"namespace": "bench", "labels": {"app": "web"}}, count=1)),
        ("resolve by field (spec.nodeName, 100)", fault({"namespace": "bench",
                                                        "node": "node-3"})),
    ]
    for label, spec in cases:
        times, peaks, calls, found = [], [], 0, 0
        for _ in range(runs):
            api.counts.clear()
            took, peak, refs = await measure(lambda spec=spec: adapter.resolve(spec, Scope()))
            times.append(took)
            peaks.append(peak)
            calls, found = sum(api.counts.values()), len(refs)
        rows.append((label, statistics.median(times), statistics.median(peaks), f"{calls}",
                     found))

    # injection: pod.delete one target after the other, as the engine does (first 100 pods)
    refs = await adapter.resolve(fault({"namespace": "bench", "labels": {"app": "web"}}),
                                 Scope())
    spec = fault({"namespace": "bench", "labels": {"app": "web"}})

    async def delete(batch: list[Any]) -> None:
        for ref in batch:
            await adapter.inject(spec, ref, adapter.prepare(spec, ref), Scope())

    api.counts.clear()
    took, peak, _ = await measure(lambda: delete(refs[:100]))
    rows.append(("inject pod.delete x100 (sequential)", took, peak,
                 f"{sum(api.counts.values())}", 100))

    partition = PartitionAdapter()
    pspec = fault({"namespace": "bench", "labels": {"shard": "1"}}, fault_type="network.partition")

    async def cut() -> None:
        [ref] = await partition.resolve(pspec, Scope())
        spec = partition.prepare(pspec, ref)
        await partition.inject(pspec, ref, spec, Scope())
        await partition.revert(spec)

    for when in ("first: imports the client's API class and models", "warm"):
        api.counts.clear()
        took, peak, _ = await measure(cut)
        rows.append((f"partition shard=1 pods: resolve, create + delete policy ({when})", took, peak,
                     f"{sum(api.counts.values())}", 1))
    return rows


def whole_run(kubeconfig: str, tmp: Path) -> tuple[float, str]:
    path = tmp / "run.json"
    path.write_text(json.dumps({
        "title": "bench", "kubernetes": {"namespaces": ["bench"]}, "limits": {"max_targets": 1000},
        "faults": [{"type": "pod.delete", "with": {"grace_period": "0s"},
                    "target": {"pods": {"namespace": "bench", "labels": {"app": "web"}},
                               "percent": "10%"}}]}))
    env = {**os.environ, "KUBECONFIG": kubeconfig, "CHAOS_STATE_DIR": str(tmp / "state"),
           "CHAOS_RUNS_DIR": str(tmp / "runs")}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "chaos", "run", "-q", str(path)], env=env,
                            capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    return time.perf_counter() - started, f"exit {result.returncode}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        kubeconfig = str(tmp / "kubeconfig")
        ready, stop = multiprocessing.Event(), multiprocessing.Event()
        child = multiprocessing.Process(target=serve, args=(args.pods, kubeconfig, ready, stop))
        child.start()
        try:
            if not ready.wait(180):
                sys.exit("the emulator did not start")
            print(f"emulator ready with {args.pods} pods", file=sys.stderr)
            os.environ["KUBECONFIG"] = kubeconfig
            rows = asyncio.run(steps(args.runs))
            run_took, run_exit = whole_run(kubeconfig, tmp)
        finally:
            stop.set()
            child.join(30)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"## Kubernetes selection and injection, {args.pods} pods (emulator over HTTP, "
          f"median of {args.runs})\n")
    print("| step | wall time | API calls | targets | peak Python heap |")
    print("|---|---:|---:|---:|---:|")
    for label, took, peak, calls, found in rows:
        print(f"| {label} | {took * 1000:.1f} ms | {calls} | {found} | {peak / 2**20:.1f} MiB |")
    print(f"| `chaos run`: pod.delete on 10% (100 pods), ledger + watchdog, process start "
          f"included | {run_took:.2f} s | – | 100 | – ({run_exit}) |")
    print(f"\nmax RSS of this (client) process: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
