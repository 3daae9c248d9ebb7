"""Traffic workers on other hosts: `chaos traffic-worker --connect` processes join a `chaos run`
that listens for them, over loopback TCP. Seen from outside: the server logs exactly the
requests the journal counts, a wrong token and garbage are refused (and logged without the
token), a worker killed mid-run makes the window ERROR, a worker whose wall clock is off by
seconds still sends on the runner's schedule, and a killed runner leaves no worker sending."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, chaos_cmd, free_port, release, wait_until
from tests.support.arrival_log_server import ArrivalServer

TOKEN = "7f3a9c1e5b2d8046aa71c3e9"  # (its start is masked in outputs like a secret)
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ArrivalServer]:
    made = ArrivalServer(tmp_path / "arrivals.log")
    yield made
    made.close()


@dataclass
class Run:
    """A `chaos run` of an experiment with remote workers, and the workers started for it."""

    tmp_path: Path
    listen: str
    runner: subprocess.Popen[bytes] | None = None
    workers: list[tuple[subprocess.Popen[bytes], Path]] | None = None

    def start(self, traffic: str, *, remote: int = 2, window: str = "4s",
              within: str = "30s") -> None:
        path = self.tmp_path / "remote.yaml"
        path.write_text(f"""title: remote traffic workers
hypothesis:
  traffic:
    {traffic}
    workers: {{remote: {remote}, listen: "{self.listen}", token: "${{CHAOS_WORKER_TOKEN}}",
               connect_within: {within}}}
  checks: [availability >= 99%]
  before: {{window: {window}}}
faults: []
""")
        with open(self.tmp_path / "runner.out", "wb") as out:
            self.runner = subprocess.Popen(
                chaos_cmd("run", str(path)), cwd=self.tmp_path, stdout=out,
                stderr=subprocess.STDOUT, env={**os.environ, "CHAOS_WORKER_TOKEN": TOKEN})

    def worker(self, token: str = TOKEN, shift: float = 0.0) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"worker{len(self.workers or ())}.err"
        env = {**os.environ, "CHAOS_WORKER_TOKEN": token,
               "CHAOS_WORKER_CLOCK_SHIFT": str(shift)}
        with open(log, "wb") as err:
            proc = subprocess.Popen(chaos_cmd("traffic-worker", "--connect", self.listen),
                                    cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, env=env)
        self.workers = [*(self.workers or ()), (proc, log)]
        return proc

    def joined(self, timeout: float = 30) -> None:
        assert wait_until(lambda: all("clock offset" in log.read_text()
                                      for _, log in self.workers or ()), timeout) is not None

    def finish(self) -> tuple[int, str]:
        assert self.runner is not None
        code = self.runner.wait(90)
        return code, (self.tmp_path / "runner.out").read_text()

    def journal(self) -> dict[str, object]:
        found = next(self.tmp_path.rglob("journal.json"))
        document = json.loads(found.read_text())
        assert isinstance(document, dict)
        return document

    def close(self) -> None:
        for proc in [*(p for p, _ in self.workers or ()), *([self.runner] if self.runner
                                                            else [])]:
            if proc.poll() is None:
                release(proc)


@pytest.fixture
def run(tmp_path: Path, state_dir: Path) -> Iterator[Run]:
    made = Run(tmp_path, f"127.0.0.1:{free_port()}")
    yield made
    made.close()


def before_check(journal: dict[str, object]) -> dict[str, object]:
    check = journal["phases"]["before"]["checks"][0]  # type: ignore[index]
    assert isinstance(check, dict)
    return check


def test_two_workers_merge_exactly_what_the_server_saw(run: Run, server: ArrivalServer) -> None:
    # 400 requests, then a pause: every request is answered long before the run ends
    run.start(f'http: {{url: "http://127.0.0.1:{server.port}/", max_lag: 250ms}}\n'
              "    profile: {stages: [{rate: 200/s, for: 2s}, {rate: 0/s, for: 1m}]}")
    run.worker()
    run.worker()
    code, err = run.finish()
    assert code == 0, err
    arrived = server.arrivals()
    series = run.journal()["series"]
    counted = sum(s["requests"] for s in series)  # type: ignore[attr-defined]
    assert counted == len(arrived) == before_check(run.journal())["events"]
    assert abs(counted - 400) <= 2
    for proc, log in run.workers or ():
        assert proc.wait(15) == 0, log.read_text()
        assert "the run ended" in log.read_text()


def test_a_wrong_token_and_garbage_are_refused_and_logged_without_the_token(
        run: Run, server: ArrivalServer) -> None:
    wrong = "not-the-token-but-long-enough"
    run.start(f'http: {{url: "http://127.0.0.1:{server.port}/", rate: 50/s}}', remote=1,
              within="5s")
    impostor = run.worker(token=wrong)
    assert impostor.wait(30) != 0
    said = (run.tmp_path / "worker0.err").read_text()
    assert "refused this worker: wrong token" in said, said
    host, port = run.listen.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as garbage:
        garbage.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = garbage.makefile("rb").read()
    assert b"refused" in answer and b"challenge" in answer  # greeted, then refused
    code, err = run.finish()
    assert code == 2, err
    assert "refused a traffic worker from 127.0.0.1:" in err and "wrong token" in err, err
    assert "not the traffic-worker protocol" in err, err
    assert "0 of 1 traffic workers connected" in err and "nothing was injected" in err, err
    assert TOKEN not in err and wrong not in err
    assert server.arrivals() == []


def test_a_worker_killed_mid_run_makes_the_window_error_not_pass(
        run: Run, server: ArrivalServer) -> None:
    run.start(f'http: {{url: "http://127.0.0.1:{server.port}/", rate: 100/s, '
              "max_lag: 250ms}", window="6s")
    run.worker()
    run.worker()
    run.joined()
    time.sleep(1.5)
    victim, survivor = (p for p, _ in run.workers or ())
    victim.send_signal(signal.SIGKILL)
    code, err = run.finish()
    check = before_check(run.journal())
    assert check["status"] == "ERROR", check
    assert "disconnected" in str(check), check
    assert code == 3, err  # steady state not met: nothing injected, never a pass
    assert survivor.wait(15) == 0  # the run's end stops the other one


def test_a_workers_clock_offset_is_measured_and_applied(
        run: Run, server: ArrivalServer) -> None:
    run.start(f'http: {{url: "http://127.0.0.1:{server.port}/", rate: 200/s, '
              "max_lag: 250ms}")
    run.worker(shift=7.0)  # its wall clock 7 s ahead of the runner's
    run.worker(shift=-4.0)
    code, err = run.finish()
    assert code == 0, err
    offsets = sorted(float(log.read_text().split("clock offset ")[1].split(" ms")[0])
                     for _, log in run.workers or ())
    assert abs(offsets[0] + 4000) < 20 and abs(offsets[1] - 7000) < 20, offsets
    check = before_check(run.journal())
    assert check["status"] == "PASS" and abs(int(check["events"]) - 800) <= 20, check
    # the server saw the schedule: 200 per second from the start, no burst, no late worker
    arrived = server.arrivals()
    first = min(arrived)
    per_second = Counter(int(t - first) for t in arrived)
    assert all(180 <= per_second[s] <= 220 for s in range(3)), per_second


def test_a_killed_runner_leaves_no_worker_sending(run: Run, server: ArrivalServer) -> None:
    run.start(f'http: {{url: "http://127.0.0.1:{server.port}/", rate: 100/s}}',
              window="60s")
    run.worker()
    run.worker()
    run.joined()
    time.sleep(1.0)
    assert run.runner is not None
    run.runner.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    run.runner.wait(10)
    for proc, log in run.workers or ():
        assert proc.wait(15) is not None, log.read_text()
        said = log.read_text()
        assert "went away" in said or "connection to the runner failed" in said, said
    time.sleep(0.5)
    arrived = server.arrivals()
    assert arrived and max(arrived) < killed + 1.0


async def hand_made_worker(port: int, pong_delay: float) -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter, dict[str, object]]:
    """The worker's side of the handshake written out, answering pings `pong_delay` late:
    the connection and the runner's first word after the pings (an order, or a refusal)."""
    from chaos.slo.traffic_remote import proof

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    greeting = json.loads(await reader.readline())
    writer.write(json.dumps({"hello": "traffic-worker", "protocol": 1, "challenge": "c" * 32,
                             "proof": proof(TOKEN, "worker", greeting["challenge"], "c" * 32)}
                            ).encode() + b"\n")
    while True:
        message = json.loads(await reader.readline())
        if "ping" in message:
            await asyncio.sleep(pong_delay)
            writer.write(json.dumps({"pong": message["ping"], "at": time.time()}).encode()
                         + b"\n")
        elif "welcome" not in message:
            assert isinstance(message, dict)
            return reader, writer, message


def remote_traffic(server: ArrivalServer, port: int) -> object:
    from chaos.slo.traffic_remote import RemoteWorkers, RemoteWorkerTraffic
    from chaos.slo.traffic_spec import traffic_from_spec

    http = {"url": f"http://127.0.0.1:{server.port}/", "rate": 50.0}
    return RemoteWorkerTraffic(traffic_from_spec(http), {"http": http}, RemoteWorkers(
        1, "127.0.0.1", port, TOKEN, connect_within=5.0, max_clock_error=0.005))


def test_a_worker_whose_clock_is_too_uncertain_is_refused(server: ArrivalServer) -> None:
    """Pongs 12 ms late: the offset is known to ±6 ms only, past the 5 ms bound."""
    from chaos.errors import ChaosError
    from chaos.slo.traffic_remote import RemoteWorkerTraffic

    port = free_port()
    traffic = remote_traffic(server, port)
    assert isinstance(traffic, RemoteWorkerTraffic)

    async def scenario() -> tuple[dict[str, object], str]:
        traffic.start()
        waiting = asyncio.create_task(traffic.ready())
        await asyncio.sleep(0.2)
        _, writer, answer = await hand_made_worker(port, 0.012)
        writer.close()
        with pytest.raises(ChaosError) as refused:
            await waiting
        await traffic.stop()
        return answer, str(refused.value)

    answer, error = asyncio.run(scenario())
    assert "refused" in answer and "max_clock_error" in str(answer["refused"]), answer
    assert float(str(answer["refused"]).split("±")[1].split(" ms")[0]) >= 6.0, answer
    assert "0 of 1 traffic workers connected" in error
    assert server.arrivals() == []


def test_a_worker_that_sends_garbage_makes_later_windows_error(server: ArrivalServer) -> None:
    from chaos.slo.checks import Status, parse_check
    from chaos.slo.traffic_remote import RemoteWorkerTraffic

    port = free_port()
    traffic = remote_traffic(server, port)
    assert isinstance(traffic, RemoteWorkerTraffic)

    async def scenario() -> object:
        traffic.start()
        waiting = asyncio.create_task(traffic.ready())
        await asyncio.sleep(0.2)
        reader, writer, order = await hand_made_worker(port, 0.0)
        assert order["order"]["share"] == [0, 1]  # type: ignore[index]
        writer.write(b"ready\n")
        await waiting
        assert "t0" in json.loads(await reader.readline())
        writer.write(b'{"ticks": [], "waiting": 0.0}\n')  # well formed: nothing yet
        await asyncio.sleep(0.3)
        start = traffic.now()
        writer.write(b"\x00garbage\n")
        await asyncio.sleep(0.5)
        end = traffic.now()
        check = parse_check("availability >= 0%", frozenset())  # would pass on any data
        verdict = check.evaluate(lambda _: traffic.window(start, end), end - start)
        writer.close()
        await traffic.stop()
        return verdict

    verdict = asyncio.run(scenario())
    assert verdict.status is Status.ERROR, verdict  # type: ignore[attr-defined]
    assert "sent a bad line" in traffic.failure
