"""Latency checks read from a real Prometheus (Debian's binary) are judged against histograms
whose truth is known exactly: two exporters (jobs `a` and `b`) record given observations into
histograms with prometheus_client's default buckets and with a layout of neighbouring bounds
(0.2/0.25, 0.3/0.35, 0.75/0.8). `latency.fraction(<=X)` reads X's own bucket and nothing else, at
every bound of both layouts; a bound that is no bucket is an ERROR naming the buckets; a label
selector in `prometheus.latency` reads one job's histogram, not the sum of every job's."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.slo.checks import SloCheck, Status, Verdict, parse_check
from chaos.slo.prometheus import Answer, Prometheus
from tests.conftest import ROOT, run_chaos
from tests.support.histogram_exporter import DEFAULT, LAYOUT
from tests.support.prometheus_server import BINARY, MISSING, prometheus, wait_for

pytestmark = pytest.mark.skipif(BINARY is None, reason=MISSING)

# between neighbouring bounds that the old filter confused (0.05/0.1 by rounding, 0.075/0.1,
# 0.2/0.25, 0.3/0.35, 0.75/0.8), so reading a second bucket changes the answer
TRUTH = {
    "a": {0.04: 300, 0.09: 200, 0.22: 150, 0.32: 150, 0.77: 100, 1.5: 100},
    "b": {0.04: 100, 0.09: 100, 0.22: 100, 0.32: 100, 0.77: 300, 1.5: 300},
}


def share(bound: float, *jobs: str) -> float:
    """The true fraction of observations at most `bound`, over `jobs`."""
    counts = [(s, n) for job in jobs for s, n in TRUTH[job].items()]
    return sum(n for s, n in counts if s <= bound) / sum(n for _, n in counts)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exporters = {job: subprocess.Popen(
        [sys.executable, "-m", "tests.support.histogram_exporter",
         *(f"--observe={s}x{n}" for s, n in truth.items())],
        cwd=ROOT, stdout=subprocess.PIPE, text=True) for job, truth in TRUTH.items()}
    try:
        ports = {}
        for job, proc in exporters.items():
            assert proc.stdout is not None
            ports[job] = int(proc.stdout.readline())
        with prometheus(tmp_path_factory.mktemp("prometheus"),
                        {job: [port] for job, port in ports.items()}) as found:
            import urllib.request
            for port in ports.values():  # zeros were scraped: now the observations
                urllib.request.urlopen(f"http://127.0.0.1:{port}/observe", timeout=10).close()
            every = sum(sum(t.values()) for t in TRUTH.values())
            wait_for(found, "sum(demo_layout_seconds_count) + sum(demo_default_seconds_count)",
                     lambda r: r and float(r[0]["value"][1]) == 2 * every,
                     "the observations were not scraped")
            yield found
    finally:
        for proc in exporters.values():
            proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()


def judge(url: str, text: str, latency: str) -> tuple[Verdict, Answer]:
    check = parse_check(text, frozenset())
    assert isinstance(check, SloCheck)
    source = Prometheus(url, None, None, latency)

    async def run() -> tuple[Verdict, Answer]:
        answer = await source.evidence(check, 60)
        return check.evaluate(lambda _: answer, 60.0), answer

    return asyncio.run(run())


@pytest.mark.parametrize("metric, layout", [("demo_default_seconds", DEFAULT),
                                            ("demo_layout_seconds", LAYOUT)])
def test_each_bucket_bound_reads_its_own_share(url: str, metric: str,
                                               layout: tuple[float, ...]) -> None:
    for bound in layout:
        text = f"latency.fraction(<={bound * 1000:g}ms) >= 0%"
        # both jobs together: increase() extrapolates each target a little differently
        verdict, _ = judge(url, text, metric)
        assert verdict.status is Status.PASS, (text, verdict)
        assert verdict.value is not None and verdict.value <= 1.0, (text, verdict)
        assert verdict.value == pytest.approx(share(bound, "a", "b"), abs=0.03), (text, verdict)
        # one target: every bucket extrapolated alike, so the share is exact
        one, _ = judge(url, text, f'{metric}{{job="a"}}')
        assert one.value == pytest.approx(share(bound, "a"), abs=1e-9), (text, one)


def test_a_bound_that_is_no_bucket_is_an_error_naming_the_buckets(url: str) -> None:
    verdict, _ = judge(url, "latency.fraction(<=300ms) >= 90%", "demo_default_seconds")
    assert verdict.status is Status.ERROR, verdict
    assert "300ms is not a bucket bound of demo_default_seconds" in verdict.reason
    assert ("5ms, 10ms, 25ms, 50ms, 75ms, 100ms, 250ms, 500ms, 750ms, 1s, 2.5s, 5s, 7.5s, 10s"
            in verdict.reason), verdict.reason


def test_a_selector_reads_one_jobs_histogram(url: str) -> None:
    for job in ("a", "b"):
        selector = f'demo_layout_seconds{{job="{job}"}}'
        for bound in (0.05, 0.35, 0.75):
            verdict, answer = judge(url, f"latency.fraction(<={bound * 1000:g}ms) >= 0%",
                                    selector)
            assert verdict.status is Status.PASS, verdict
            assert verdict.value == pytest.approx(share(bound, job), abs=1e-9), (job, verdict)
            assert answer.events == pytest.approx(sum(TRUTH[job].values()), rel=0.5)
    # the true medians: a's in (0.075, 0.1], b's in (0.75, 1]
    median_a, _ = judge(url, "latency.p50 <= 100ms", 'demo_default_seconds{job="a"}')
    median_b, _ = judge(url, "latency.p50 <= 100ms", 'demo_default_seconds{job=~"b|c"}')
    assert median_a.status is Status.PASS and median_a.value is not None, median_a
    assert 0.075 < median_a.value <= 0.1
    assert median_b.status is Status.FAIL and median_b.value is not None, median_b
    assert 0.75 < median_b.value <= 1.0


@pytest.mark.parametrize(("check", "expected"), [
    # the observations are older than the 1 s window: no events, but the queries built
    # around the selector are valid ones (main: ERROR, "parse error")
    ("latency.fraction(<=250ms) >= 40%", "NO_DATA"),
    # a bound that is no bucket is said even when the window has no samples
    ("latency.fraction(<=300ms) >= 40%", "300ms is not a bucket bound of "
                                         'demo_default_seconds{job="b"}: its buckets are 5ms'),
])
def test_a_run_reads_the_selected_histogram(url: str, tmp_path: Path, state_dir: Path,
                                            check: str, expected: str) -> None:
    experiment = tmp_path / "selector.yaml"
    experiment.write_text(f"""title: job b's latency, read through a selector
hypothesis:
  prometheus:
    url: {url}
    latency: 'demo_default_seconds{{job="b"}}'
  checks:
    - {check}
  min_events: 1
  before: {{window: 1s}}
""")
    validated = run_chaos("validate", str(experiment), timeout=60)
    assert validated.returncode == 0, validated.stderr
    result = run_chaos("run", str(experiment), timeout=120)
    output = result.stdout + result.stderr
    assert "parse error" not in output and "Traceback" not in output, output
    assert result.returncode == 3 and expected in output, output
