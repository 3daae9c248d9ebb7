"""Buckets at rest: a packed bucket (compressed histograms) merges to exactly what the live one
did, is about 1% of its size, and a dropped bucket is freed by reference counting, at once,
not at the next full garbage collection (the runner grew by tens of MiB a minute)."""

from __future__ import annotations

import gc
import random
import weakref

from chaos.slo.buckets import Bucket, PackedBucket, Window, decode_histogram


def filled(seed: int, n: int = 500) -> Bucket:
    rng = random.Random(seed)
    bucket = Bucket()
    for i in range(n):
        bucket.requests += 1
        bucket.latency.record_value(int(rng.lognormvariate(8, 1)))
        bucket.lag.record_value(rng.randint(1, 3000))
        if i % 50 == 0:
            bucket.errors += 1
            bucket.last_error = "HTTP 500"
    return bucket


def test_a_packed_bucket_merges_exactly_like_the_live_one() -> None:
    seconds = [filled(i) for i in range(30)]
    live, packed = Bucket(), Bucket()
    for bucket in seconds:
        live.merge(bucket)
        packed.merge(bucket.packed())
    assert (packed.requests, packed.errors, packed.last_error) == (
        live.requests, live.errors, live.last_error)
    for q in (50, 90, 99, 99.9, 100):
        assert (packed.latency.get_value_at_percentile(q)
                == live.latency.get_value_at_percentile(q))
    a, b = Window(live, 30, 500, 0.025), Window(packed, 30, 500, 0.025)
    assert a.fraction_at_most(0.005) == b.fraction_at_most(0.005)
    assert a.lag_quantile(99) == b.lag_quantile(99)
    empty = Bucket().packed()
    assert isinstance(empty, PackedBucket) and empty.unpacked().latency.total_count == 0


def test_a_packed_bucket_is_a_small_fraction_of_a_live_one() -> None:
    bucket = filled(1)
    live = bucket.latency.counts_len * bucket.latency.word_size * 2
    packed = bucket.packed()
    assert len(packed.latency) + len(packed.lag) < live / 50


def test_a_dropped_bucket_is_freed_without_a_garbage_collection() -> None:
    gc.disable()
    try:
        bucket = filled(2)
        alive = weakref.ref(bucket.latency)
        decoded = decode_histogram(bucket.latency.encode())  # as packed buckets are read
        also = weakref.ref(decoded)
        del bucket, decoded
        assert alive() is None and also() is None
    finally:
        gc.enable()
