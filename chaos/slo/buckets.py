"""Counts and latency histograms of traffic, per 100 ms tick and per second, and their merges.

Percentiles of a window must come from the merged histograms of its buckets: averaging the
buckets' percentiles is wrong as soon as the load or the latency changes within the window.
HdrHistogram (2 significant digits, 1 us to 1 h) merges exactly and records in about a
microsecond. A Window is what checks judge (chaos.slo.checks.Evidence).

A request that timed out has an unknown latency, greater than the timeout: it is counted in
`timeouts` and recorded in the histogram at the time it was given up (a lower bound, which is
what charts draw), and a percentile that falls on such requests is infinite for checks, shown
as `> 2s`. Nothing answered later than the timeout, so timed-out requests are the slowest.

Memory: a live histogram is 26 KiB of counters, so seconds that no 100 ms window needs any
more are kept packed (`PackedBucket`: HdrHistogram's compressed encoding, ~200 bytes each), and
an hour of traffic costs about a MiB. hdrh's histogram and its encoder reference each other;
left as is, only a full garbage collection frees a dropped bucket (the runner grew by tens of
MiB a minute): `new_histogram` and `decode_histogram` break that cycle.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

from chaos.units import format_duration

_LOWEST_US, _HIGHEST_US, _DIGITS = 1, 3_600_000_000, 2


def _acyclic(hist: HdrHistogram) -> HdrHistogram:
    """Freed by reference counting, the moment the last reference goes: the encoder's
    back-reference (used by nothing in hdrh) becomes a weak one."""
    hist.encoder.histogram = weakref.proxy(hist)
    return hist


def new_histogram() -> HdrHistogram:
    return _acyclic(HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS))


def decode_histogram(blob: bytes) -> HdrHistogram:
    """A histogram from HdrHistogram's compressed, base64 encoding (what `encode()` gives)."""
    return _acyclic(HdrHistogram.decode(blob))


class Bucket:
    """Counts and histograms of the requests that completed in one tick or second."""

    __slots__ = ("errors", "lag", "last_error", "latency", "requests", "starved", "timeouts")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.timeouts = 0  # errors with no answer within the timeout: latency unknown, above it
        self.starved = 0  # requests the generator delayed: they waited for a free connection
        self.latency = new_histogram()  # microseconds from the intended send time
        self.lag = new_histogram()  # microseconds between intended and actual start
        self.last_error = ""

    def merge(self, other: Bucket | PackedBucket) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.timeouts += other.timeouts
        self.starved += other.starved
        if other.requests:
            latency, lag = other.histograms()
            self.latency.add(latency)
            self.lag.add(lag)
        self.last_error = other.last_error or self.last_error

    def histograms(self) -> tuple[HdrHistogram, HdrHistogram]:
        return self.latency, self.lag

    def packed(self) -> PackedBucket:
        return PackedBucket(self)


class PackedBucket:
    """A Bucket at rest: the same counts, its histograms compressed (about 1% of the size)."""

    __slots__ = ("errors", "lag", "last_error", "latency", "requests", "starved", "timeouts")

    def __init__(self, bucket: Bucket) -> None:
        self.requests, self.errors = bucket.requests, bucket.errors
        self.timeouts, self.starved = bucket.timeouts, bucket.starved
        self.last_error = bucket.last_error
        empty = not bucket.requests
        self.latency: bytes = b"" if empty else bucket.latency.encode()
        self.lag: bytes = b"" if empty else bucket.lag.encode()

    def histograms(self) -> tuple[HdrHistogram, HdrHistogram]:
        if not self.requests:
            return new_histogram(), new_histogram()
        return decode_histogram(self.latency), decode_histogram(self.lag)

    def unpacked(self) -> Bucket:
        bucket = Bucket()
        bucket.merge(self)
        return bucket

    def as_json(self) -> dict[str, object]:
        """What a traffic worker sends the runner (chaos.slo.traffic_workers)."""
        return {"requests": self.requests, "errors": self.errors, "timeouts": self.timeouts,
                "starved": self.starved, "last_error": self.last_error,
                "latency": self.latency.decode("ascii"), "lag": self.lag.decode("ascii")}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> PackedBucket:
        """The inverse of as_json; ValueError when `data` is not one."""
        packed = cls.__new__(cls)
        try:
            packed.requests, packed.errors = _count(data["requests"]), _count(data["errors"])
            packed.timeouts, packed.starved = _count(data["timeouts"]), _count(data["starved"])
            packed.last_error = str(data["last_error"])[:200]
            packed.latency = str(data["latency"]).encode("ascii")
            packed.lag = str(data["lag"]).encode("ascii")
            if packed.requests:
                packed.histograms()  # a corrupt encoding fails here, not in a window later
        except Exception as exc:  # hdrh raises several kinds for a corrupt encoding
            raise ValueError(f"not a bucket: {type(exc).__name__}: {exc}"[:200]) from exc
        return packed


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"expected a count, got {value!r}"[:80])
    return value


@dataclass
class Window:
    """The merged buckets of a time range; what checks judge (chaos.slo.checks.Evidence)."""

    bucket: Bucket
    seconds: float
    rate: float  # the intended rate at the end of the window
    max_lag: float
    source: str = "traffic"
    error: str = ""
    timeout: float = math.inf  # requests not answered within this are timed out
    connections: int = 0  # the generator's connection cap

    @property
    def events(self) -> int:
        return self.bucket.requests

    @property
    def errors(self) -> int:
        return self.bucket.errors

    @property
    def invalid(self) -> str:
        """Why the window cannot be judged, or ""."""
        lag = self.lag_quantile(99)
        if lag is not None and lag > self.max_lag:
            return (f"generator lagged: p99 lag {lag * 1000:.0f} ms at {self.rate:,.0f} req/s "
                    f"(limit {format_duration(self.max_lag)})")
        if self.bucket.starved:
            median = self.seen_quantile(50) or 0.0
            return (f"generator out of connections: {self.bucket.starved:,} of "
                    f"{self.bucket.requests:,} requests waited for one of its "
                    f"{self.connections:,} connections, so their latency is partly the "
                    f"generator's; raise traffic.http.connections (at {self.rate:,.0f} req/s "
                    f"and a median latency of {format_duration(median)} the open model keeps "
                    f"about {math.ceil(self.rate * median):,} requests in flight)")
        return ""

    @property
    def detail(self) -> str:
        return self.bucket.last_error

    def quantile(self, q: float) -> float | None:
        """The latency at percentile q; infinite when it falls on a timed-out request."""
        bucket = self.bucket
        if not bucket.requests:
            return None
        if math.ceil(q / 100 * bucket.requests) > bucket.requests - bucket.timeouts:
            return math.inf
        return self.seen_quantile(q)

    def seen_quantile(self, q: float) -> float | None:
        """The latency at percentile q with timed-out requests at their timeout (a lower bound):
        what a chart can draw, never what a check judges."""
        if not self.bucket.requests:
            return None
        return float(self.bucket.latency.get_value_at_percentile(q)) / 1e6

    def lag_quantile(self, q: float) -> float | None:
        if not self.bucket.lag.total_count:
            return None
        return float(self.bucket.lag.get_value_at_percentile(q)) / 1e6

    def fraction_at_most(self, seconds: float) -> float | None:
        hist = self.bucket.latency
        if not hist.total_count:
            return None
        limit = seconds * 1e6
        below = 0
        for item in hist.get_recorded_iterator():
            if item.value_iterated_to > limit and not hist.values_are_equivalent(
                    item.value_iterated_to, int(limit)):
                break
            below += item.count_at_value_iterated_to
        return float(below) / float(hist.total_count)
