"""A traffic window merges per-second buckets and answers the checks' questions exactly.

Known latencies go in; counts, percentiles, the share under a bound, the timed-out rule and the
reasons a window cannot be judged come out. A packed bucket's JSON (what a traffic worker sends
the runner) is read back or refused.
"""

from __future__ import annotations

import math
import re

import pytest

from chaos.slo.buckets import Bucket, PackedBucket, Window

MS = 1000  # histograms record microseconds


def bucket_of(latencies_ms: list[int], *, errors: int = 0, timeouts: int = 0, starved: int = 0,
              lag_ms: int = 1, last_error: str = "") -> Bucket:
    bucket = Bucket()
    for ms in latencies_ms:
        bucket.requests += 1
        bucket.latency.record_value(ms * MS)
        bucket.lag.record_value(lag_ms * MS)
    bucket.errors, bucket.timeouts, bucket.starved = errors, timeouts, starved
    bucket.last_error = last_error
    return bucket


def window_of(bucket: Bucket, max_lag: float = 0.05) -> Window:
    return Window(bucket, seconds=10.0, rate=100.0, max_lag=max_lag, connections=8)


def test_merging_adds_counts_and_keeps_the_newest_error() -> None:
    total = Bucket()
    total.merge(bucket_of([10, 20], errors=1, last_error="HTTP 500"))
    total.merge(bucket_of([30], errors=1, timeouts=1, starved=1, last_error="timeout"))
    total.merge(bucket_of([]))
    assert (total.requests, total.errors, total.timeouts, total.starved) == (3, 2, 1, 1)
    assert total.last_error == "timeout"
    assert total.latency.total_count == 3


@pytest.mark.parametrize(("q", "seconds"), [(50, 0.05), (90, 0.09), (100, 0.1), (10, 0.01)])
def test_percentiles_come_from_the_merged_histogram(q: float, seconds: float) -> None:
    window = window_of(bucket_of(list(range(10, 101, 10))))
    value = window.quantile(q)
    assert value is not None
    assert value == pytest.approx(seconds, rel=0.01)


def test_a_percentile_on_timed_out_requests_is_infinite() -> None:
    window = window_of(bucket_of([10] * 8 + [2000] * 2, timeouts=2, errors=2))
    assert window.quantile(80) == pytest.approx(0.01, rel=0.01)
    p90 = window.quantile(90)
    assert p90 is not None and math.isinf(p90)
    seen = window.seen_quantile(90)
    assert seen is not None and seen == pytest.approx(2.0, rel=0.01)


def test_an_empty_window_has_no_values() -> None:
    window = window_of(Bucket())
    assert window.quantile(50) is None
    assert window.seen_quantile(50) is None
    assert window.lag_quantile(99) is None
    assert window.fraction_at_most(1.0) is None
    assert window.invalid == ""
    assert window.events == 0


@pytest.mark.parametrize(("bound", "fraction"), [(0.01, 0.25), (0.02, 0.5), (0.035, 0.75),
                                                  (1.0, 1.0), (0.001, 0.0)])
def test_the_share_under_a_bound_counts_requests_at_most_that_slow(bound: float,
                                                                    fraction: float) -> None:
    window = window_of(bucket_of([10, 20, 30, 40]))
    assert window.fraction_at_most(bound) == pytest.approx(fraction)


def test_a_lagging_generator_makes_the_window_invalid() -> None:
    window = window_of(bucket_of([10] * 5, lag_ms=200), max_lag=0.05)
    # HdrHistogram keeps 3 significant digits: 200 ms is stored as 200.x ms
    assert re.fullmatch(r"generator lagged: p99 lag 20[01] ms at 100 req/s \(limit 50ms\)",
                        window.invalid)
    assert window_of(bucket_of([10] * 5, lag_ms=40), max_lag=0.05).invalid == ""


def test_a_starved_generator_makes_the_window_invalid_and_says_what_to_raise() -> None:
    window = window_of(bucket_of([100] * 10, starved=4))
    reason = window.invalid
    assert "4 of 10 requests waited for one of its 8 connections" in reason
    assert "raise traffic.http.connections" in reason
    assert "a median latency of 100ms" in reason


def test_evidence_reads_the_bucket() -> None:
    window = window_of(bucket_of([10, 20, 30], errors=1, last_error="refused"))
    assert (window.events, window.errors, window.detail) == (3, 1, "refused")


def test_a_packed_bucket_round_trips_through_json() -> None:
    original = bucket_of([10, 20, 30], errors=1, timeouts=1, last_error="HTTP 503")
    again = PackedBucket.from_json(original.packed().as_json()).unpacked()
    assert (again.requests, again.errors, again.timeouts, again.last_error) == (
        3, 1, 1, "HTTP 503")
    assert again.latency.get_value_at_percentile(50) == \
        original.latency.get_value_at_percentile(50)


def test_an_empty_packed_bucket_has_empty_histograms() -> None:
    packed = Bucket().packed()
    assert packed.as_json()["latency"] == ""
    latency, lag = PackedBucket.from_json(packed.as_json()).histograms()
    assert latency.total_count == lag.total_count == 0


@pytest.mark.parametrize("change", [
    {"requests": -1}, {"errors": True}, {"timeouts": "3"}, {"latency": "not base64 at all"},
    {"starved": None},
])
def test_a_corrupt_bucket_from_a_worker_is_refused(change: dict[str, object]) -> None:
    data = bucket_of([10, 20]).packed().as_json() | change
    with pytest.raises(ValueError, match="not a bucket"):
        PackedBucket.from_json(data)


def test_a_bucket_missing_a_field_is_refused() -> None:
    data = bucket_of([10]).packed().as_json()
    del data["lag"]
    with pytest.raises(ValueError, match="not a bucket: KeyError"):
        PackedBucket.from_json(data)
