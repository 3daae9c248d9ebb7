"""SLO checks judged from a real Prometheus (Debian's binary) scraping a real service that
counts its own requests with prometheus_client: availability matches the service's own totals,
latency comes from its histogram buckets, an empty answer is NO_DATA and a bad query is ERROR
with Prometheus' own message."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from chaos.slo.checks import SloCheck, Status, parse_check
from chaos.slo.prometheus import Answer, Prometheus
from chaos.slo.traffic import HttpTraffic, TrafficSpec
from tests.conftest import ROOT, free_port
from tests.support.answer_and_hold_server import answer_and_hold

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.needs("prometheus")

GOOD = 'sum(increase(demo_requests_total{code="200"}[$window]))'
TOTAL = "sum(increase(demo_requests_total[$window]))"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, int]]:
    """The service, a Prometheus scraping it every second, and 6 s of traffic at 100 req/s;
    yields (Prometheus URL, total requests, good requests) as the service counted them."""
    tmp = tmp_path_factory.mktemp("prometheus")
    service = subprocess.Popen([sys.executable, "-m", "tests.integration.metrics_http_server",
                                "--error-every", "20", "--slow-every", "10", "--slow", "0.4"],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert service.stdout is not None
    port = int(service.stdout.readline())
    web = free_port()
    (tmp / "prometheus.yml").write_text(f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: demo
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
""")
    prom = subprocess.Popen([PROMETHEUS or "prometheus", f"--config.file={tmp}/prometheus.yml",
                             f"--storage.tsdb.path={tmp}/data",
                             f"--web.listen-address=127.0.0.1:{web}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{web}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the zeroed counters were scraped twice
            try:
                query = urllib.parse.urlencode({"query": "count_over_time(up[1m])"})
                with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=1) as answer:
                    result = json.load(answer)["data"]["result"]
                    if result and float(result[0]["value"][1]) >= 2:
                        break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("Prometheus did not scrape the service within 30 s")

        async def load() -> None:
            traffic = HttpTraffic(TrafficSpec(f"http://127.0.0.1:{port}/", rate=100))
            traffic.start()
            await asyncio.sleep(6)
            await traffic.drain(5)

        asyncio.run(load())
        time.sleep(3)  # the last requests scraped
        service.terminate()
        total, good = (int(x) for x in service.stdout.readline().split())
        yield url, total, good
    finally:
        prom.terminate()
        prom.wait(10)
        service.kill()
        service.wait()
        service.stdout.close()


def judge(url: str, text: str, good: str = GOOD, total: str = TOTAL,
          latency: str | None = "demo_latency_seconds"):  # type: ignore[no-untyped-def]
    check = parse_check(text, frozenset())
    assert isinstance(check, SloCheck)
    source = Prometheus(url, good, total, latency)

    async def run():  # type: ignore[no-untyped-def]
        answer = await source.evidence(check, 60)
        return check.evaluate(lambda _: answer, 60.0, objective=0.99), answer

    return asyncio.run(run())


def test_availability_matches_the_services_own_count(stack: tuple[str, int, int]) -> None:
    url, total, good = stack
    assert total >= 500 and good / total == pytest.approx(0.95, abs=0.005)
    verdict, answer = judge(url, "availability >= 99%")
    assert verdict.status is Status.FAIL
    assert verdict.value is not None and abs(verdict.value - good / total) <= 0.005
    assert answer.events == pytest.approx(total, rel=0.2)  # increase() extrapolates a little
    assert verdict.as_dict()["source"] == f"prometheus:{url}"
    burn, _ = judge(url, "burn_rate(1m) < 1")
    assert burn.status is Status.FAIL and burn.value == pytest.approx(5.0, rel=0.15)


def test_latency_comes_from_the_histogram(stack: tuple[str, int, int]) -> None:
    url, _, _ = stack
    p95, _ = judge(url, "latency.p95 < 350ms")
    assert p95.status is Status.FAIL and p95.value is not None and 0.35 < p95.value <= 0.5
    fraction, _ = judge(url, "latency.fraction(<=350ms) >= 85%")
    assert fraction.status is Status.PASS
    assert fraction.value == pytest.approx(0.9, abs=0.02)  # every 10th request took 400 ms


def test_an_empty_answer_is_no_data(stack: tuple[str, int, int]) -> None:
    url, _, _ = stack
    verdict, _ = judge(url, "availability >= 99%", good="sum(increase(nothing_here[$window]))",
                       total="sum(increase(nothing_here[$window]))")
    assert verdict.status is Status.NO_DATA


def test_a_bad_query_is_an_error_with_prometheus_message(stack: tuple[str, int, int]) -> None:
    url, _, _ = stack
    verdict, _ = judge(url, "availability >= 99%", good="sum(increase(demo_requests_total[")
    assert verdict.status is Status.ERROR
    assert "HTTP 400" in verdict.reason and "parse error" in verdict.reason


def test_an_unreachable_prometheus_is_an_error() -> None:
    verdict, _ = judge(f"http://127.0.0.1:{free_port()}", "availability >= 99%")
    assert verdict.status is Status.ERROR and "cannot reach Prometheus" in verdict.reason


def ask_raw(answer: bytes, url: str = "http://127.0.0.1:{port}") -> tuple[Answer, list[bytes]]:
    """What Prometheus.evidence makes of a server that answers `answer` to any query."""
    seen: list[bytes] = []
    check = parse_check("availability >= 99%", frozenset())
    assert isinstance(check, SloCheck)

    async def run() -> Answer:
        server = await answer_and_hold(answer, seen)
        async with server:
            port = server.sockets[0].getsockname()[1]
            source = Prometheus(url.format(port=port), GOOD, TOTAL, None, timeout=5.0)
            return await source.evidence(check, 60)
    return asyncio.run(run()), seen


def test_a_malformed_answer_is_an_error_not_a_crash() -> None:
    # a head longer than the HTTP client's limit (httpcore: 100 KiB) is a protocol error
    answer, _ = ask_raw(b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * 200_000 + b"\r\n\r\n{}")
    assert "cannot reach Prometheus" in answer.error, answer
    # something else answering 200 with JSON that is not Prometheus' API
    body = b'{"status":"success","data":[1,2]}'
    other, _ = ask_raw(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert "unexpected answer from" in other.error, other


def test_credentials_in_the_url_are_sent_and_never_shown() -> None:
    body = b'{"status":"success","data":{"resultType":"scalar","result":[0,"5"]}}'
    answer, seen = ask_raw(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
                           "http://sre:hunter2@127.0.0.1:{port}/prometheus")
    assert answer.events == 5 and not answer.error, answer
    assert seen[0].startswith(b"GET /prometheus/api/v1/query?")
    assert b"Authorization: Basic " + base64.b64encode(b"sre:hunter2") in seen[0]
    assert "hunter2" not in answer.source and answer.source.startswith("prometheus:http://sre:***@")
    refused, _ = ask_raw(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
                         "http://sre:hunter2@127.0.0.1:{port}")
    assert "HTTP 404" in refused.error and "path prefix" in refused.error, refused
    assert "hunter2" not in refused.error + refused.source
