"""Traffic past one core: worker processes split one schedule and the runner merges their
histograms. Seen from outside: the server counts exactly the single-process schedule's
requests, the merged window equals a single-process run of the same schedule in every count,
the workers are real processes (psutil) that are gone after stop, after a worker dies
(windows become ERROR, never PASS) and after the runner is killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from chaos.slo.checks import Status, parse_check
from chaos.slo.traffic import HttpTraffic, traffic_from_spec
from chaos.slo.traffic_workers import WorkerTraffic
from tests.conftest import ROOT, chaos_cmd, release, wait_until
from tests.support.arrival_log_server import ArrivalServer

RATE = 600.0
SECONDS = 3.0


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ArrivalServer]]:
    made = [ArrivalServer(tmp_path / "a.log"), ArrivalServer(tmp_path / "b.log")]
    yield made
    for srv in made:
        srv.close()


def workers_of(pid: int) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "chaos.slo.traffic_workers" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


async def measure(traffic: HttpTraffic) -> tuple[object, ...]:
    traffic.start()
    await traffic.ready()
    while traffic.now() < traffic.t0 + SECONDS + 0.2:
        await asyncio.sleep(0.05)
    end = traffic.t0 + SECONDS
    await traffic.settle(end)
    window = traffic.window(traffic.t0, end)
    procs = workers_of(psutil.Process().pid)
    await traffic.stop()
    return window, procs, traffic.t0


def test_two_workers_send_the_one_process_schedule_and_merge_exactly(
        servers: list[ArrivalServer]) -> None:
    raws = [{"http": {"url": f"http://127.0.0.1:{s.port}/", "rate": RATE, "max_lag": 0.25}}
            for s in servers]
    merged, procs, t0 = asyncio.run(measure(WorkerTraffic(
        traffic_from_spec(raws[0]["http"]), raws[0], 2)))
    single, _, single_t0 = asyncio.run(measure(HttpTraffic(traffic_from_spec(raws[1]["http"]))))
    assert len(procs) == 2  # real processes, while it ran
    assert not [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    arrived = servers[0].arrivals()
    alone = servers[1].arrivals()
    expected = int(RATE * SECONDS)
    # the server saw the schedule; the merged window counts exactly what a single process does
    assert sum(t0 <= t < t0 + SECONDS + 0.1 for t in arrived) >= expected
    assert merged.events == single.events == expected  # type: ignore[attr-defined]
    assert merged.errors == single.errors == 0  # type: ignore[attr-defined]
    assert merged.bucket.latency.total_count == expected  # type: ignore[attr-defined]
    assert merged.bucket.lag.total_count == expected  # type: ignore[attr-defined]
    assert merged.invalid == "" and merged.error == ""  # type: ignore[attr-defined]
    for q in (50, 99):
        m, s = merged.quantile(q), single.quantile(q)  # type: ignore[attr-defined]
        assert m is not None and s is not None and m < 0.25 and s < 0.25
    assert sum(single_t0 <= t < single_t0 + SECONDS + 0.1 for t in alone) >= expected


def test_a_worker_that_dies_makes_later_windows_error_never_pass(
        servers: list[ArrivalServer]) -> None:
    raw = {"http": {"url": f"http://127.0.0.1:{servers[0].port}/", "rate": 200.0,
                    "max_lag": 0.25}}

    async def run() -> tuple[object, object]:
        traffic = WorkerTraffic(traffic_from_spec(raw["http"]), raw, 2)
        traffic.start()
        await traffic.ready()
        while traffic.now() < traffic.t0 + 1.0:  # the workers started meanwhile
            await asyncio.sleep(0.05)
        assert len(workers_of(psutil.Process().pid)) == 2
        workers_of(psutil.Process().pid)[0].kill()
        start = traffic.now()
        await asyncio.sleep(1.0)
        end = traffic.now()
        await traffic.settle(end)
        check = parse_check("availability >= 0%", frozenset())  # would pass on any data
        verdict = check.evaluate(lambda _: traffic.window(start, end), end - start)
        await traffic.stop()
        return verdict, traffic.failure

    verdict, failure = asyncio.run(run())
    assert verdict.status is Status.ERROR, verdict  # type: ignore[attr-defined]
    assert "traffic worker" in str(failure) and "exited" in str(failure)


@pytest.mark.timeout(120)
def test_the_cli_runs_workers_and_a_killed_runner_leaves_none(
        tmp_path: Path, state_dir: Path, servers: list[ArrivalServer]) -> None:
    path = tmp_path / "workers.yaml"
    path.write_text(f"""title: two generator processes
hypothesis:
  traffic:
    http: {{url: "http://127.0.0.1:{servers[0].port}/", rate: 300/s, max_lag: 250ms}}
    workers: {{count: 2, force: true}}  # whatever the machine's cores
  checks: [availability >= 99%]
  before: {{window: 3s}}
faults: []
""")
    done = subprocess.run(chaos_cmd("run", str(path)), cwd=ROOT, capture_output=True,
                          text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    journal = json.loads(next((tmp_path / "runs").glob("*/journal.json")).read_text())
    check = journal["phases"]["before"]["checks"][0]
    assert check["status"] == "PASS" and abs(check["events"] - 900) <= 30
    # SIGKILL the runner mid-run: its workers notice their parent is gone and end
    path.write_text(path.read_text().replace("window: 3s", "window: 60s"))
    runner = subprocess.Popen(chaos_cmd("run", str(path)), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: len(workers_of(runner.pid)) == 2, 30) is not None
        workers = workers_of(runner.pid)
        time.sleep(0.5)
        runner.send_signal(signal.SIGKILL)
        runner.wait(10)
        assert wait_until(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE
                                          for w in workers), 15) is not None
    finally:
        if runner.poll() is None:
            release(runner)
