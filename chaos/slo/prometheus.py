"""Prometheus as a hypothesis source: SLO checks judged on what the service itself reports.

At the end of each window the engine asks instant queries over exactly that window
(`$window` in the user's queries becomes e.g. `20s`): good and total events for availability,
error rate and burn rates; `histogram_quantile` and bucket ratios of a histogram metric for
latency checks. An empty answer or NaN is NO_DATA (no traffic is not a pass); an HTTP error is
ERROR with Prometheus' own message, because a broken query must not look like a broken service.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from chaos.errors import truncate
from chaos.model.promql import Selector, parse_selector
from chaos.slo.checks import SloCheck
from chaos.slo.http_client import (
    Client,
    HttpFailed,
    Reply,
    Tls,
    Unreachable,
    Untrusted,
    request,
    shown,
)

MAX_ANSWER = 4 * 1024 * 1024  # sum()-ed instant queries answer in bytes; a runaway query won't


HINTS = {
    300: " (a redirect, often http -> https or to a path prefix: set prometheus.url to where "
         "it points)",
    401: " (check prometheus.headers: the credentials were refused)",
    403: " (check prometheus.headers: the credentials were refused)",
    404: " (no Prometheus API there: a Prometheus behind a path prefix needs the prefix in "
         "prometheus.url, e.g. https://host/prometheus)",
}


class QueryFailed(Exception):
    """Prometheus could not answer (unreachable, HTTP error, bad query)."""


@dataclass(frozen=True)
class Api:
    """Who was asked, for messages that say what to fix."""

    name: str
    port: str  # where it listens unless told otherwise
    ca_setting: str  # the experiment's setting that names a CA for it


PROMETHEUS_API = Api("Prometheus", "Prometheus itself listens on 9090 unless told otherwise",
                     "prometheus.ca_file")
ALERTMANAGER_API = Api("Alertmanager", "Alertmanager itself listens on 9093",
                       "detection.alertmanager.ca_file")


@dataclass
class Answer:
    """Evidence (chaos.slo.checks) from Prometheus for one check and window."""

    events: int = 0
    errors: int = 0
    error: str = ""
    values: dict[float, float] = field(default_factory=dict)  # percentile -> seconds
    fractions: dict[float, float] = field(default_factory=dict)  # bound -> share
    source: str = "prometheus"
    invalid: str = ""
    detail: str = ""

    def quantile(self, q: float) -> float | None:
        return self.values.get(q)

    def fraction_at_most(self, seconds: float) -> float | None:
        return self.fractions.get(seconds)


@dataclass(frozen=True)
class Prometheus:
    url: str
    good: str | None
    total: str | None
    latency: str | None
    timeout: float = 5.0
    headers: Mapping[str, str] = field(default_factory=dict)
    verify_tls: bool = True
    ca_file: str | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Prometheus:
        return cls(spec["url"].rstrip("/"), spec.get("good"), spec.get("total"),
                   spec.get("latency"), float(spec.get("timeout") or 5.0),
                   dict(spec.get("headers") or {}), spec.get("verify_tls") is not False,
                   spec.get("ca_file"))

    @property
    def shown(self) -> str:
        """The URL for messages and journals: a password in it (`https://u:p@host`) masked."""
        return shown(self.url)

    async def evidence(self, check: SloCheck, seconds: float) -> Answer:
        """What `check` needs, over the `seconds` that end now."""
        window = f"{max(1, round(seconds))}s"
        # one instant for every query of the answer: good and total must count the same events
        # (increase() extrapolates to the window's edges, so a moved window moves the ratio)
        at = time.time()
        answer = Answer(source=f"prometheus:{self.shown}")
        try:
            if self.good and self.total:
                total = await self.scalar(self.total.replace("$window", window), at)
                good = await self.scalar(self.good.replace("$window", window), at)
                if total is not None and good is not None:
                    answer.events = round(total)
                    answer.errors = max(0, round(total - good))
            if check.stat.startswith("p") or check.stat == "fraction":
                await self._latency(check, window, answer, at)
        except QueryFailed as exc:
            answer.error = str(exc)
        return answer

    async def _latency(self, check: SloCheck, window: str, answer: Answer, at: float) -> None:
        assert self.latency is not None, \
            "the loader refuses latency checks without prometheus.latency"
        histogram = parse_selector(self.latency)  # checked by the loader
        if not (self.good and self.total):
            count = await self.scalar(
                f"sum(increase({histogram.series('_count')}[{window}]))", at)
            answer.events = round(count) if count is not None else 0
        if check.stat == "fraction":
            await self._fraction(histogram, check.param, window, answer, at)
        else:
            value = await self.scalar(
                f"histogram_quantile({check.param / 100}, "
                f"sum by (le) (rate({histogram.series('_bucket')}[{window}])))", at)
            if value is not None:
                answer.values[check.param] = value

    async def _fraction(self, histogram: Selector, bound: float, window: str,
                        answer: Answer, at: float) -> None:
        """The share of events at most `bound`: its one bucket over the +Inf bucket. Buckets
        are told apart by value, not by how `le` is spelled (`0.35`, `1` or `1.0` depending on
        the client and Prometheus' version), so exactly one bucket is read, never a neighbour;
        a bound that is no bucket of the histogram is an ERROR naming the buckets there are."""
        series = histogram.series("_bucket")
        rates = _by_bound(await self.vector(f"sum by (le) (rate({series}[{window}]))", "le",
                                            at))
        match = _bucket(rates, bound)
        if match is None:  # no such bucket, or none with samples in the window: which?
            there = _by_bound(await self.vector(f"count by (le) ({series})", "le", at))
            if not there:
                answer.detail = f"no series {series} in Prometheus"
            elif _bucket(there, bound) is None:
                listed = ", ".join(_seconds(b) for b in sorted(there) if b != math.inf)
                answer.error = (f"{_seconds(bound)} is not a bucket bound of {self.latency}: "
                                f"its buckets are {listed}; a fraction can only be read at "
                                "one of them (or add the bucket to the histogram)")
            else:
                answer.detail = f"no samples of {series} in the window"
            return
        total = rates.get(math.inf)
        if total:
            answer.fractions[bound] = min(1.0, rates[match] / total)

    async def scalar(self, query: str, at: float | None = None) -> float | None:
        """One number from an instant query at `at` (epoch; default now): the sum of a vector,
        or a scalar; None if empty or NaN."""
        data = await self._get("/api/v1/query", {"query": query, "time": _instant(at)})
        result = data.get("result")
        kind = data.get("resultType")
        if kind == "scalar" and isinstance(result, list):
            values = [float(result[1])]
        elif kind == "vector" and isinstance(result, list):
            values = [float(r["value"][1]) for r in result]
        else:
            raise QueryFailed(f"unexpected answer to {query!r}: {truncate(str(data))}")
        values = [v for v in values if not math.isnan(v)]
        return sum(values) if values else None

    async def vector(self, query: str, label: str, at: float | None = None) -> dict[str, float]:
        """An instant query's vector as {value of `label`: number}, NaN left out."""
        data = await self._get("/api/v1/query", {"query": query, "time": _instant(at)})
        result = data.get("result")
        if data.get("resultType") != "vector" or not isinstance(result, list):
            raise QueryFailed(f"unexpected answer to {query!r}: {truncate(str(data))}")
        found: dict[str, float] = {}
        for series in result:
            value = float(series["value"][1])
            if not math.isnan(value):
                found[str(series.get("metric", {}).get(label))] = value
        return found

    async def _get(self, path: str, params: Mapping[str, str]) -> Any:
        query = f"?{urlencode(params)}" if params else ""
        reply = await self.ask(f"{self.url}{path}{query}")
        try:
            doc = json.loads(reply.body)
        except ValueError:
            doc = {}
        if reply.status != 200 or not isinstance(doc, dict) or doc.get("status") != "success":
            message = (doc.get("error") if isinstance(doc, dict) else None) or \
                reply.text or "no body"
            status = reply.status
            hint = HINTS.get(status // 100 * 100 if status // 100 == 3 else status, "")
            raise QueryFailed(f"Prometheus answered HTTP {status}: {truncate(str(message))}"
                              f"{hint}")
        data = doc.get("data")
        if not isinstance(data, dict):  # not Prometheus' API, whatever answered
            raise QueryFailed(f"unexpected answer from {self.shown}: {truncate(reply.text)}")
        return data

    async def ask(self, url: str, api: Api = PROMETHEUS_API,
                  agent: str = "chaos-slo") -> Reply:
        """One GET within the time limit; QueryFailed (saying what to fix) when no answer
        came. Prometheus and Alertmanager are reached alike, so they fail alike."""
        settings = Client(Tls(self.verify_tls, self.ca_file), agent)
        try:
            async with asyncio.timeout(self.timeout):
                return await request(url, headers=self.headers, settings=settings,
                                     limit=MAX_ANSWER)
        except TimeoutError:
            raise QueryFailed(f"{api.name} at {self.shown} did not answer within "
                              f"{self.timeout:g}s") from None
        except Untrusted as exc:
            raise QueryFailed(f"cannot trust {api.name} at {self.shown}: {exc.reason}; set "
                              f"{api.ca_setting} to the CA that signed its certificate "
                              "(or verify_tls: false)") from exc
        except HttpFailed as exc:
            default = f" (the URL names no port, so the scheme's: {api.port})" \
                if isinstance(exc, Unreachable) and exc.refused and not urlsplit(self.url).port \
                else ""
            raise QueryFailed(f"cannot reach {api.name} at {self.shown}: {exc}{default}") \
                from exc


def _instant(at: float | None) -> str:
    return f"{time.time() if at is None else at:.3f}"


def _seconds(bound: float) -> str:
    """A bucket bound as written in checks, exactly: 2.5ms, 350ms, 1s, 7.5s."""
    return f"{bound * 1000:g}ms" if bound < 1 else f"{bound:g}s"


def _by_bound(series: Mapping[str, float]) -> dict[float, float]:
    """{le: value} by the bound's value: `1` and `1.0` (one client's and another's, or
    Prometheus 2's and 3's spelling) are one bucket."""
    buckets: dict[float, float] = {}
    for le, value in series.items():
        try:
            upper = float(le)
        except ValueError:
            continue  # not a histogram's bucket
        buckets[upper] = buckets.get(upper, 0.0) + value
    return buckets


def _bucket(buckets: Mapping[float, float], bound: float) -> float | None:
    """The one bucket whose upper bound is `bound`, compared as numbers (with a tolerance for
    how the check's duration was written: `0.35s`, `350ms`)."""
    return next((b for b in buckets if math.isclose(b, bound, rel_tol=1e-9)), None)
