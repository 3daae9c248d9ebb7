"""The runner's own Prometheus metrics: `--metrics HOST:PORT` serves /metrics while it runs.

`RunMetrics` subscribes to the event bus like any reporter and only counts; prometheus_client's
HTTP server answers scrapes from its own thread, so a slow scraper never touches the event loop,
an injection or a revert. The ledger gauges (`chaos_faults_left_open`, the "leftover fault"
alarm) are read from the ledger at scrape time, so they are right also about other runs and
runners that died; `chaos exporter` serves only those, for a host, permanently.

prometheus_client is imported here only, when metrics are asked for: `chaos --help` and
`chaos validate` do not pay for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from chaos.errors import UsageError
from chaos.runner.events import Event
from chaos.safety.ledger import Ledger

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

CHECK_STATUS = {"PASS": 1, "FAIL": 0, "NO_DATA": -1, "INVALID": -2, "ERROR": -3}


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise MetricsUnavailable("--metrics needs prometheus_client: pip install "
                                 "'chaos[metrics]' (or prometheus_client)") from exc
    return prometheus_client


class MetricsUnavailable(UsageError):
    """prometheus_client is missing, or the address cannot be served (exit 2)."""


class LedgerCollector:
    """Open injections as the ledger has them, read at every scrape."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.scraped: float | None = None  # monotonic time of the last scrape

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        self.scraped = time.monotonic()
        from chaos.safety.recover import runner_alive

        open_faults = GaugeMetricFamily(
            "chaos_ledger_open_faults", "injections the ledger has open, by fault type",
            labels=["type"])
        left = GaugeMetricFamily(
            "chaos_faults_left_open", "open injections whose runner is gone or whose "
            "deadline passed: run `chaos recover`", labels=["type"])
        counts: dict[str, int] = {}
        leftovers: dict[str, int] = {}
        now = time.time()
        for info in self.ledger.runs():
            entries = [e for e in info.entries if e.is_open]
            if not entries:
                continue
            alive = runner_alive(info)
            for e in entries:
                counts[e.fault] = counts.get(e.fault, 0) + 1
                if not alive or (e.deadline is not None and e.deadline < now):
                    leftovers[e.fault] = leftovers.get(e.fault, 0) + 1
        for kind, n in sorted(counts.items()):
            open_faults.add_metric([kind], n)
        for kind, n in sorted(leftovers.items()):
            left.add_metric([kind], n)
        if not leftovers:
            left.add_metric([""], 0)  # the alarm's series exists (at 0) before anything is left
        yield open_faults
        yield left


class ExperimentsCollector:
    """A game day's experiments as they stand, read at every scrape: one series per experiment,
    `chaos_gameday_experiment_status` (labels experiment, status, verdict) = 1."""

    def __init__(self, experiments: Callable[[], Iterable[tuple[str, str, str]]]) -> None:
        self.experiments = experiments  # (experiment, status, verdict)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "chaos_gameday_experiment_status", "the game day's experiments: status (pending, "
            "running, done, skipped) and verdict", labels=["experiment", "status", "verdict"])
        for experiment, status, verdict in self.experiments():
            family.add_metric([experiment, status, verdict], 1)
        yield family


def ledger_registry(ledger: Ledger) -> CollectorRegistry:
    registry: CollectorRegistry = _client().CollectorRegistry()
    registry.register(LedgerCollector(ledger))
    return registry


def last_scrape(registry: CollectorRegistry) -> float | None:
    collectors = getattr(registry, "_collector_to_names", {})
    return max((c.scraped for c in collectors if isinstance(c, LedgerCollector) and c.scraped),
               default=None)


class RunMetrics:
    """An event subscriber that keeps the runner's metrics in its own registry."""

    def __init__(self, ledger: Ledger) -> None:
        client = _client()
        self.registry = registry = ledger_registry(ledger)
        self.active = client.Gauge("chaos_active_faults", "faults injected and not yet reverted",
                                   ["type", "target"], registry=registry)
        self.injections = client.Counter("chaos_injections", "injections by outcome",
                                         ["type", "outcome"], registry=registry)
        self.reverts = client.Counter("chaos_reverts", "reverts by outcome and by whom",
                                      ["type", "outcome", "by"], registry=registry)
        self.check_status = client.Gauge(
            "chaos_check_status", "the last verdict of each check: 1 PASS, 0 FAIL, -1 NO_DATA, "
            "-2 INVALID, -3 ERROR", ["experiment", "phase", "check"], registry=registry)
        self.check_value = client.Gauge("chaos_check_value", "the last measured value of each "
                                        "check (seconds or a ratio)",
                                        ["experiment", "phase", "check"], registry=registry)
        self.breaches = client.Counter("chaos_guardrail_breaches", "guardrails breached",
                                       ["experiment", "check"], registry=registry)
        self.runs = client.Counter("chaos_runs", "finished runs by verdict",
                                   ["experiment", "verdict"], registry=registry)
        self.detect = client.Gauge("chaos_time_to_detect_seconds", "from the first injection "
                                   "until the expected alert fired", ["experiment", "alert"],
                                   registry=registry)
        self.running = client.Gauge("chaos_run_active", "1 while an experiment runs",
                                    ["experiment"], registry=registry)
        self._types: dict[str, str] = {}  # injection id -> fault type
        self._title = ""

    def __call__(self, event: Event) -> None:
        d, name = event.data, event.name
        if name == "run.started":
            self._title = str(d.get("title") or "")
            self.running.labels(self._title).set(1)
        elif name == "fault.injected":
            self._types[d["injection"]] = d["type"]
            self.active.labels(d["type"], d["target"]).inc()
            self.injections.labels(d["type"], "injected").inc()
        elif name == "fault.failed":
            self.injections.labels("", "failed").inc()
        elif name in ("fault.reverted", "fault.revert_failed"):
            kind = self._types.pop(d["injection"], "")
            outcome = d.get("outcome", "failed") if name == "fault.reverted" else "failed"
            self.reverts.labels(kind, outcome, d.get("by", "")).inc()
            if kind:
                self.active.labels(kind, d["target"]).dec()
        elif name == "check.evaluated":
            v = d["verdict"]
            labels = (self._title, d["phase"], str(v["check"]))
            self.check_status.labels(*labels).set(CHECK_STATUS.get(v["status"], -3))
            if isinstance(v.get("value"), int | float):
                self.check_value.labels(*labels).set(float(v["value"]))
        elif name == "guardrail.breached":
            self.breaches.labels(self._title, str(d["check"])).inc()
        elif name == "alert.measured" and d.get("time_to_detect") is not None:
            self.detect.labels(self._title, str(d["alert"])).set(float(d["time_to_detect"]))
        elif name == "run.finished":
            self.runs.labels(self._title, d["verdict"]).inc()
            self.running.labels(self._title).set(0)


def parse_listen(text: str) -> tuple[str, int]:
    """`127.0.0.1:9464`, `:9464` (all interfaces) or `9464` -> (host, port); ValueError."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
        raise ValueError(f"expected HOST:PORT like 127.0.0.1:9464, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class MetricsServer:
    """/metrics over HTTP from prometheus_client's own thread, until `close`."""

    def __init__(self, registry: CollectorRegistry, listen: str) -> None:
        self.registry = registry
        try:
            host, port = parse_listen(listen)
        except ValueError as exc:
            raise MetricsUnavailable(f"--metrics / --listen: {exc}") from None
        try:
            self._server, self._thread = _client().start_http_server(port, host,
                                                                     registry=registry)
        except OSError as exc:
            raise MetricsUnavailable(f"cannot serve metrics on {listen}: {exc.strerror or exc}; "
                                     "choose another --metrics address") from exc
        self.port = self._server.server_port

    def close(self, linger: float = 0.0) -> None:
        """Stop serving; if someone scrapes us, first wait (at most `linger` seconds) for one
        more scrape, so the final values (verdicts, reverts) reach Prometheus."""
        ended = time.monotonic()
        if last_scrape(self.registry) is not None:
            while (last_scrape(self.registry) or 0) < ended and time.monotonic() < ended + linger:
                time.sleep(0.05)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
