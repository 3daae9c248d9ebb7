"""The open-model generator against ground truth: a loopback server with a known mix of errors
and delays logs every request it answers; availability and p95 must match that log, a server
stall must show in the tail (no coordinated omission), and a generator pushed past what it can
send must make the verdict INVALID, never PASS or FAIL."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from chaos.slo.checks import Status, parse_check
from chaos.slo.traffic import HttpTraffic, TrafficSpec, connection_cap, offset_of
from tests.conftest import journals, run_chaos
from tests.support.system_tools import tool

ROOT = Path(__file__).resolve().parents[2]


class LoggedServer:
    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.log = tmp_path / "requests.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.logged_http_server", "--log",
             str(self.log), *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def stop(self) -> list[tuple[int, float]]:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.close()
        return [(int(s), float(t)) for s, t in (line.split() for line in
                                                 self.log.read_text().splitlines())]


@pytest.fixture
def server_args() -> list[str]:
    return []


@pytest.fixture
def server(tmp_path: Path, server_args: list[str]) -> Iterator[LoggedServer]:
    srv = LoggedServer(tmp_path, *server_args)
    yield srv
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait()
    srv.close()


async def generate(port: int, rate: float, seconds: float, **kw: object) -> HttpTraffic:
    traffic = HttpTraffic(TrafficSpec(f"http://127.0.0.1:{port}/checkout", rate=rate, **kw))
    traffic.start()
    await asyncio.sleep(seconds)
    await traffic.drain(timeout=5)
    return traffic


def exact_percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)), 1) - 1]


@pytest.mark.parametrize("server_args", [["--error-every", "50", "--delay-at", "7,17,27",
                                          "--delay", "0.4"]])
def test_availability_and_p95_match_the_server_log(server: LoggedServer) -> None:
    # the verdict under test is FAIL, not INVALID: a GC pause of the long-lived test process
    # must not turn it into "the generator fell behind"
    traffic = asyncio.run(generate(server.port, 500, 4.0, max_lag=0.25))
    log = server.stop()
    window = traffic.total()
    assert window.events == len(log) >= 1900  # every request answered is counted, once
    truth_availability = sum(status < 500 for status, _ in log) / len(log)
    assert truth_availability == pytest.approx(0.98, abs=0.002)  # the mix is what we think
    measured_availability = 1 - window.errors / window.events
    assert abs(measured_availability - truth_availability) <= 0.005
    truth_p95 = exact_percentile([t for _, t in log], 95)
    assert truth_p95 >= 0.4
    measured = window.quantile(95)
    assert measured is not None and abs(measured - truth_p95) <= 0.05 * truth_p95
    verdict = parse_check("latency.p95 < 350ms", frozenset()).evaluate(
        lambda _: window, 4.0)
    assert verdict.status is Status.FAIL and verdict.value == measured


@pytest.mark.parametrize("server_args", [["--stall-after", "1.5", "--stall-for", "1"]])
def test_a_one_second_stall_shows_in_p99(server: LoggedServer) -> None:
    traffic = asyncio.run(generate(server.port, 1000, 4.0, timeout=5.0))
    log = server.stop()
    window = traffic.total()
    assert window.errors == 0 and window.events == len(log)
    p99 = window.quantile(99)
    assert p99 is not None and p99 >= 0.9, f"p99 {p99}: the stall was hidden"
    # the server itself saw one slow request; a closed-loop client would report about that
    assert exact_percentile([t for _, t in log], 99) < 0.5


def test_a_generator_past_its_capacity_is_invalid_never_pass(server: LoggedServer) -> None:
    async def overload() -> tuple[object, ...]:
        traffic = HttpTraffic(TrafficSpec(f"http://127.0.0.1:{server.port}/", rate=400000,
                                          timeout=1.0))
        traffic.start()
        start = traffic.now()
        await asyncio.sleep(0.5)
        end = traffic.now()
        await traffic.settle(end)
        check = parse_check("availability >= 0%", frozenset())  # would pass on any data
        verdict = check.evaluate(lambda _: traffic.window(start, end), end - start)
        await traffic.stop()
        return verdict, traffic.window(start, end)

    verdict, _ = asyncio.run(overload())
    assert verdict.status is Status.INVALID  # type: ignore[attr-defined]
    reason = verdict.reason  # type: ignore[attr-defined]
    # either limit of our own generator may be reached first on a busy machine: its scheduler
    # (lag) or its connection pool (10,000 connections at most); both make the window INVALID
    if reason.startswith("generator lagged: p99 lag "):
        assert "at 400,000 req/s" in reason, reason
    else:
        assert reason.startswith("generator out of connections"), reason
        assert "traffic.http.connections" in reason, reason


def test_a_ramp_spreads_requests_as_declared() -> None:
    # 100/s after a 2 s ramp: 100 requests during the ramp, then exactly 100 per second
    assert offset_of(0, 100, 2.0) == 0.0
    assert offset_of(100, 100, 2.0) == pytest.approx(2.0)
    assert offset_of(50, 100, 2.0) == pytest.approx(math.sqrt(2.0))
    assert offset_of(300, 100, 2.0) == pytest.approx(4.0)
    assert offset_of(300, 100, 0.0) == pytest.approx(3.0)


def test_https_traffic_verifies_certificates_unless_told_not_to(tmp_path: Path) -> None:
    """A self-signed loopback server: with verification every request is a connection error;
    with `verify_tls: false` every request is answered, as the server's own count says."""
    subprocess.run([tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True,
                   timeout=60)

    async def run() -> tuple[object, object, int]:
        import ssl
        served = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal served
            try:
                while True:
                    await reader.readuntil(b"\r\n\r\n")
                    served += 1
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        windows = []
        for verify in (True, False):
            traffic = HttpTraffic(TrafficSpec(f"https://127.0.0.1:{port}/", rate=50,
                                              verify_tls=verify))
            traffic.start()
            await asyncio.sleep(1.0)
            await traffic.drain(timeout=3)
            windows.append(traffic.total())
        server.close()
        return windows[0], windows[1], served

    verified, unverified, served = asyncio.run(run())
    assert verified.events >= 40 and verified.errors == verified.events  # type: ignore[attr-defined]
    assert "CERTIFICATE_VERIFY_FAILED" in verified.detail  # type: ignore[attr-defined]
    assert unverified.errors == 0 and unverified.events == served >= 40  # type: ignore[attr-defined]


# --- timed-out requests: their latency is unknown and above the timeout, never ≈ the timeout

EVERY_FIFTH_TAKES_5S = ["--delay-at", ",".join(str(i) for i in range(0, 50, 5)), "--delay", "5"]


@pytest.mark.parametrize("server_args", [EVERY_FIFTH_TAKES_5S])
def test_a_percentile_on_timed_out_requests_fails_any_latency_bound(
        server: LoggedServer) -> None:
    # 2 s timeout (the default): every fifth request is answered after 5 s, the rest at once
    traffic = asyncio.run(generate(server.port, 50, 3.0))
    log = server.stop()
    window = traffic.total()
    assert window.events >= 140 and window.bucket.timeouts == window.errors
    slow = sum(t >= 5 for _, t in log) + (window.events - len(log))  # given up before answered
    assert window.errors == slow == pytest.approx(window.events / 5, abs=2)

    def judge(text: str) -> object:
        return parse_check(text, frozenset()).evaluate(lambda _: window, 3.0)

    fast = judge("latency.p50 < 100ms")  # falls on the answered requests
    assert fast.status is Status.PASS and fast.value < 0.1  # type: ignore[attr-defined]
    for text in ("latency.p99 < 1500ms", "latency.p99 < 3s", "latency.p95 < 1h"):
        verdict = judge(text)  # `< 3s` and `< 1h` are refused by `chaos validate`, see below
        assert verdict.status is Status.FAIL, text  # type: ignore[attr-defined]
        assert verdict.as_dict()["measured"] == "> 2s", text  # type: ignore[attr-defined]
        assert "no answer within 2s" in verdict.reason  # type: ignore[attr-defined]
    share = judge("latency.fraction(<=1s) >= 90%")  # timed-out requests are never within 1s
    assert share.status is Status.FAIL  # type: ignore[attr-defined]
    assert share.value == pytest.approx(0.8, abs=0.02)  # type: ignore[attr-defined]


SLOW_SERVICE = """\
title: a service answering every request after 5 s
hypothesis:
  traffic: {{http: {{url: "http://127.0.0.1:{port}/", rate: 50/s}}}}
  checks: ["{check}"]
  before: {{window: 2s}}
"""


@pytest.mark.parametrize("server_args", [["--delay-at", ",".join(map(str, range(50))),
                                          "--delay", "5"]])
def test_a_service_slower_than_the_timeout_is_never_held(
        server: LoggedServer, tmp_path: Path, state_dir: Path) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW_SERVICE.format(port=server.port, check="latency.p99 < 3s"))
    refused = run_chaos("validate", str(path))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"{path}:4:12: hypothesis.checks[0]: 'latency.p99 < 3s': the latency bound 3s is " \
           "not below traffic.http.timeout (2s)" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr

    path.write_text(SLOW_SERVICE.format(port=server.port, check="latency.p99 < 1500ms"))
    result = run_chaos("run", str(path), timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 3, output  # steady state not met: nothing to inject anyway
    (journal,) = journals(tmp_path / "runs")
    (verdict,) = journal["phases"]["before"]["checks"]
    assert verdict["status"] == "FAIL" and verdict["measured"] == "> 2s", verdict
    assert "> 2s" in output
    # strict JSON (jq, browsers): the infinite percentile is null, `measured` says what it was
    (path_,) = (tmp_path / "runs").glob("*/journal.json")

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the journal: not JSON")

    strict = json.loads(path_.read_text(), parse_constant=refuse)
    assert strict["phases"]["before"]["checks"][0]["value"] is None
    for fmt in ("html", "markdown", "junit"):
        report = run_chaos("report", str(path_), "--format", fmt, "-o", str(tmp_path / fmt))
        assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr


# --- the generator's own connection limit is never charged to the service

EVERY_REQUEST_TAKES_400MS = ["--delay-at", ",".join(map(str, range(50))), "--delay", "0.4"]


@pytest.mark.parametrize("server_args", [EVERY_REQUEST_TAKES_400MS])
def test_a_healthy_service_at_1000_req_s_is_measured_healthy(server: LoggedServer) -> None:
    """1,000 req/s x 400 ms keeps ~400 requests in flight: the pool grows to what the rate
    needs (by default up to rate x timeout), instead of queueing behind 256 connections."""
    traffic = asyncio.run(generate(server.port, 1000, 3.0, max_lag=0.25))
    log = server.stop()
    window = traffic.total()
    assert traffic.connections == connection_cap(traffic.spec) == 2210
    assert window.events == len(log) >= 2900  # every request sent was answered and counted
    assert max(t for _, t in log) < 0.6  # the server was healthy throughout
    assert window.errors == 0, window.detail
    p50 = window.quantile(50)
    assert p50 is not None and 0.4 <= p50 < 0.5
    assert window.invalid == ""
    assert window.bucket.starved == 0


CAPPED = """\
title: a healthy service behind a generator capped at 256 connections
hypothesis:
  traffic: {{http: {{url: "http://127.0.0.1:{port}/", rate: 1000/s, connections: 256,
                    max_lag: 250ms}}}}
  checks: [availability >= 99%, latency.p50 < 600ms]
  before: {{window: 2s}}
"""


@pytest.mark.parametrize("server_args", [EVERY_REQUEST_TAKES_400MS])
def test_a_window_the_connection_cap_delayed_is_invalid(
        server: LoggedServer, tmp_path: Path, state_dir: Path) -> None:
    path = tmp_path / "capped.yaml"
    path.write_text(CAPPED.format(port=server.port))
    result = run_chaos("run", str(path), timeout=120)
    output = result.stdout + result.stderr
    log = server.stop()
    assert max(t for _, t in log) < 0.6  # the server was healthy: nothing to charge it with
    assert result.returncode == 2, output
    assert "raise traffic.http.connections" in output
    (journal,) = journals(tmp_path / "runs")
    verdicts = journal["phases"]["before"]["checks"]
    assert {v["status"] for v in verdicts} == {"INVALID"}, verdicts
    assert all(v["reason"].startswith("generator out of connections: ") for v in verdicts)
    assert "of its 256 connections" in verdicts[0]["reason"]


STALL_DURING_THE_FAULT = """\
title: the server stalls for 1 s while the fault is held; the generator has 10 connections
hypothesis:
  traffic: {{http: {{url: "http://127.0.0.1:{port}/", rate: 100/s, connections: 10}}}}
  checks: [availability >= 99%]
  before: {{window: 1s}}
  during: {{checks: [availability >= 50%]}}
  after: {{settle: 1s, window: 1s}}
faults:
  - type: process.suspend
    target: {{process: {{pid: {pid}}}}}
    duration: 3s
"""


@pytest.mark.parametrize("server_args", [["--stall-after", "2", "--stall-for", "1"]])
def test_a_during_window_the_connection_cap_delayed_is_invalid_not_a_failure(
        server: LoggedServer, tmp_path: Path, state_dir: Path,
        sleeper: psutil.Process) -> None:
    path = tmp_path / "stall.yaml"
    path.write_text(STALL_DURING_THE_FAULT.format(port=server.port, pid=sleeper.pid))
    result = run_chaos("run", str(path), timeout=120)
    output = result.stdout + result.stderr
    server.stop()
    (journal,) = journals(tmp_path / "runs")
    phases = journal["phases"]
    assert [v["status"] for v in phases["before"]["checks"]] == ["PASS"], output
    assert [v["status"] for v in phases["after"]["checks"]] == ["PASS"], output
    (during,) = phases["during"]["checks"]
    assert during["status"] == "INVALID", output
    assert "of its 10 connections" in during["reason"]
    assert result.returncode == 2, output  # the generator's limit, not the service's failure
