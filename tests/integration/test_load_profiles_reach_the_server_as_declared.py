"""Load profiles and request mixes seen from the server: a server logs when each request
arrived and its path; each stage and spike must arrive at its declared rate (counted by the
server, on the machine's one monotonic clock), a mix in its declared proportions, and the real
CLI must send a declared profile."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.slo.schedule import RateSchedule
from chaos.slo.traffic import HttpTraffic, Request, TrafficSpec
from tests.conftest import ROOT, run_chaos


class ArrivalServer:
    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "arrivals.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.arrival_log_server", "--log", str(self.log)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.proc.stdout.close()

    def arrivals(self) -> list[tuple[float, str]]:
        """Stop the server; (monotonic seconds, path) of every request it answered."""
        self.proc.terminate()
        self.proc.wait(timeout=10)
        return [(float(t), p) for t, p in (line.split() for line in
                                            self.log.read_text().splitlines())]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ArrivalServer]:
    srv = ArrivalServer(tmp_path)
    yield srv
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait()


def between(arrivals: list[tuple[float, str]], start: float, end: float) -> int:
    return sum(start <= t < end for t, _ in arrivals)


async def send(spec: TrafficSpec, seconds: float) -> HttpTraffic:
    traffic = HttpTraffic(spec)
    traffic.start()
    await asyncio.sleep(seconds)
    await traffic.drain(timeout=5)
    return traffic


def test_each_stage_arrives_at_its_rate(server: ArrivalServer) -> None:
    schedule = RateSchedule.of_stages([{"rate": 100, "for": 2}, {"rate": 400, "for": 2},
                                       {"rate": 100, "for": 2}])
    spec = TrafficSpec(f"http://127.0.0.1:{server.port}/", rate=schedule.peak,
                       schedule=schedule)
    traffic = asyncio.run(send(spec, 6.0))
    arrivals = server.arrivals()
    t0 = traffic.t0
    # a request arrives a little after it is due: allow a few at each boundary
    for (start, end), expected in (((0, 2), 200), ((2, 4), 800), ((4, 6), 200)):
        got = between(arrivals, t0 + start, t0 + end)
        assert abs(got - expected) <= 0.03 * expected + 5, (start, end, got)
    window = traffic.window(t0 + 2, t0 + 4)
    assert window.events == 800 and traffic.rate_at(t0 + 3) == pytest.approx(400)


def test_a_spike_arrives_on_top_of_its_base(server: ArrivalServer) -> None:
    schedule = RateSchedule.of_spike({"base": 100, "peak": 500, "at": 1.5, "for": 1.5,
                                      "ramp": 0.25})
    spec = TrafficSpec(f"http://127.0.0.1:{server.port}/", rate=schedule.peak,
                       schedule=schedule)
    traffic = asyncio.run(send(spec, 4.5))
    arrivals = server.arrivals()
    t0 = traffic.t0
    spike = 2 * 0.25 * 300 + 1.0 * 500  # ramps at the mean of base and peak, then the peak
    for (start, end), expected in (((0, 1.5), 150), ((1.5, 3), spike), ((3, 4.5), 150)):
        got = between(arrivals, t0 + start, t0 + end)
        assert abs(got - expected) <= 0.03 * expected + 5, (start, end, got)


def test_a_mix_arrives_in_its_proportions(server: ArrivalServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    spec = TrafficSpec(f"{base}/", rate=300, mix=(
        (8, Request(f"{base}/browse")),
        (2, Request(f"{base}/search?q=1", method="POST", body=b'{"q": 1}'))))
    traffic = asyncio.run(send(spec, 2.0))
    arrivals = server.arrivals()
    paths = [p for _, p in arrivals]
    assert len(paths) == traffic.total().events >= 550
    assert set(paths) == {"/browse", "/search?q=1"}
    # a smooth round robin: exact to one period (5 requests) whatever the total
    assert abs(paths.count("/search?q=1") - len(paths) / 5) <= 1


def test_the_cli_sends_a_declared_profile_and_mix(tmp_path: Path, state_dir: Path,
                                                   server: ArrivalServer) -> None:
    path = tmp_path / "stages.yaml"
    base = f"http://127.0.0.1:{server.port}"
    path.write_text(f"""title: stages through the CLI
hypothesis:
  traffic:
    http: {{url: "{base}/", max_lag: 250ms}}
    mix:
      - {{weight: 3, http: {{url: "{base}/a"}}}}
      - {{weight: 1, http: {{url: "{base}/b", method: POST, body: "x"}}}}
    profile:
      stages: [{{rate: 50/s, for: 2s}}, {{rate: 200/s, for: 2s, ramp: 1s}}]
  checks: [availability >= 99%]
  before: {{window: 4s}}
faults: []
""")
    result = run_chaos("run", str(path), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    arrivals = server.arrivals()
    first = arrivals[0][0]
    # stage 1: 100 requests in 2 s; stage 2: 1 s ramp (125) + 1 s at 200/s
    assert abs(between(arrivals, first, first + 2) - 100) <= 8
    assert abs(between(arrivals, first + 2, first + 4) - 325) <= 15
    paths = [p for _, p in arrivals]
    assert abs(paths.count("/b") - len(paths) / 4) <= 1
    # the before window spans both stages: the journal reports it per stage
    journal = json.loads(next((tmp_path / "runs").glob("*/journal.json")).read_text())
    stages = [e for e in journal["events"] if e["event"] == "traffic.stage"]
    assert [(e["phase"], e["rate"]) for e in stages] == [("before", 50), ("before", 200)]
    assert abs(stages[0]["requests"] - 100) <= 2 and abs(stages[1]["requests"] - 325) <= 2
    assert all(e["errors"] == 0 and e["p99"] is not None for e in stages)
    assert [s["requests"] for s in journal["phases"]["before"]["stages"]] == [
        e["requests"] for e in stages]
    assert "stage 2 (200/s): " in result.stdout  # the terminal summary, per stage
