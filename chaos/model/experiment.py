"""The typed, immutable experiment model.

Everything downstream (planner, engine, reports) reads these frozen objects; nothing mutates
loaded input. Values are already converted: durations are seconds, percents are fractions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol

from chaos.errors import Location
from chaos.model.schema import Obj, Schema


def frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only copy, nested mappings included."""
    if not mapping:
        return MappingProxyType({})
    return MappingProxyType({
        k: frozen(v) if isinstance(v, Mapping) else v for k, v in mapping.items()
    })


def thaw(value: Any) -> Any:
    """Plain, JSON-serialisable copy of a frozen value (for journals and ledgers)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Target:
    kind: str  # process | service | ... (the target kind picks the adapter)
    selector: Mapping[str, Any]
    count: int | None = None  # hit at most this many of the matches
    percent: float | None = None  # or this fraction of them (rounded up)
    location: Location | None = None

    def describe(self) -> str:
        if self.kind == "service":
            return f"service {self.selector.get('name')}"
        parts = ", ".join(f"{k}={v}" for k, v in self.selector.items() if v is not None)
        return f"{self.kind}({parts})"


@dataclass(frozen=True)
class FaultSpec:
    index: int
    name: str
    type: str
    target: Target
    params: Mapping[str, Any]
    start: float  # seconds after the during phase starts
    duration: float  # seconds; 0 for instant faults (kill)
    location: Location | None = None
    # the experiment's `kubernetes:` section (context, namespaces, ...) for Kubernetes targets,
    # so adapters and revert specs know which cluster without a global
    kubernetes: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    kind: str  # http | tcp | exec | process | pods | deployment
    spec: Mapping[str, Any]
    location: Location | None = None
    kubernetes: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class CheckNeeds:
    """What a check needs of the experiment around it, as the check grammar (chaos.slo, above
    the model) says: validation asks this, and never learns the grammar's statistics."""

    # what judges it: a probe's samples, events of traffic or Prometheus, a breaking-point search
    judged_on: Literal["probe", "events", "search"]
    # the `prometheus:` queries it needs when Prometheus, not traffic, is the source
    prometheus: tuple[str, ...] = ()
    needs_objective: bool = False  # relative to the SLO objective (a burn rate)
    latency_bound: float | None = None  # seconds: it bounds latency here (a timeout must exceed it)
    subject: str = ""  # the probe it judges (probe checks)
    stops_search: bool = False  # usable as a breaking-point search's stop condition


class ParsedCheck(Protocol):
    """A check as the grammar parsed it; the runner judges with it, validation reads `needs`."""

    @property
    def needs(self) -> CheckNeeds: ...


@dataclass(frozen=True)
class CheckSpec:
    text: str
    parsed: ParsedCheck  # the hypothesis engine's parsed form (chaos.slo.checks)
    location: Location | None = None


@dataclass(frozen=True)
class Phase:
    window: float = 0.0  # seconds of sampling (before/after)
    every: float = 0.5  # seconds between probe rounds
    settle: float = 0.0  # after: wait this long after the last revert before measuring
    recover_within: float | None = None  # after: the checks must pass again within this
    checks: tuple[CheckSpec, ...] = ()  # during: checks evaluated over the whole phase
    abort: tuple[CheckSpec, ...] = ()  # during: guardrails evaluated every round
    abort_window: float = 5.0  # during: guardrails look at this much recent history


@dataclass(frozen=True)
class Slo:
    objective: float  # fraction of good events, e.g. 0.995
    period: float | None = None  # seconds the objective is promised over (for reports)


@dataclass(frozen=True)
class Hypothesis:
    probes: tuple[ProbeSpec, ...]
    checks: tuple[CheckSpec, ...]
    before: Phase
    during: Phase
    after: Phase
    slo: Slo | None = None
    traffic: Mapping[str, Any] | None = None  # traffic.http, as declared (units converted)
    # traffic.profile ({"stages": [...]} or {"spike": {...}}) and traffic.mix, as declared
    traffic_profile: Mapping[str, Any] | None = None
    traffic_mix: tuple[Mapping[str, Any], ...] = ()
    traffic_workers: int = 1  # generator processes (traffic.workers, `auto` resolved)
    # traffic.workers when they join from other hosts: remote, listen, token, connect_within,
    # max_clock_error (chaos.slo.traffic_remote)
    traffic_remote: Mapping[str, Any] | None = None
    # traffic.workers.kubernetes, with connect_within and max_clock_error: a Job of worker pods
    # the run creates (chaos.runner.load_job)
    traffic_kubernetes: Mapping[str, Any] | None = None
    prometheus: Mapping[str, Any] | None = None  # url, good, total, latency
    min_events: int | None = None  # fewer events in a window is NO_DATA (default per source)


@dataclass(frozen=True)
class AlertRule:
    """One `detection.expect` or `detection.forbid` item: label matchers (label, op, value)
    with op one of = != =~ !~, and for expectations the deadlines in seconds."""

    matchers: tuple[tuple[str, str, str], ...]
    expected: bool  # expect (must fire) or forbid (must not)
    within: float | None = None  # after the first injection
    resolves_within: float | None = None  # after the last revert
    location: Location | None = None

    @property
    def text(self) -> str:
        labels = ", ".join(f"{k}{op}{v}" for k, op, v in self.matchers)
        return f"alert {{{labels}}}"


@dataclass(frozen=True)
class Detection:
    """The `detection:` section: where alerts are read and what must (not) fire."""

    source: str  # alertmanager | prometheus
    endpoint: Mapping[str, Any]  # url, timeout, headers, verify_tls, ca_file (made absolute)
    every: float
    rules: tuple[AlertRule, ...]


@dataclass(frozen=True)
class Webhook:
    """Where notifications go (`notify:` of experiments and game days)."""

    url: str
    timeout: float = 5.0
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    events: tuple[str, ...] = ()
    format: str = "json"  # json (the documented payload) | slack (incoming webhook text/blocks)


@dataclass(frozen=True)
class Readiness:
    kind: str  # http | tcp | exec | delay
    spec: Mapping[str, Any]
    timeout: float


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    run: tuple[str, ...]
    cwd: str | None
    env: Mapping[str, str]
    ready: Readiness | None
    stop_signal: str
    stop_timeout: float


@dataclass(frozen=True)
class Limits:
    max_duration: float = 600.0
    max_targets: int = 5


@dataclass(frozen=True)
class Experiment:
    title: str
    source: str  # path as given
    source_hash: str  # sha256 of the file text
    description: str = ""
    tags: tuple[str, ...] = ()
    services: tuple[ServiceSpec, ...] = ()
    hypothesis: Hypothesis | None = None
    faults: tuple[FaultSpec, ...] = ()
    limits: Limits = field(default_factory=Limits)
    variables: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    kubernetes: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    uses: frozenset[str] = frozenset()  # variables the file refers to (${name}) or declares
    detection: Detection | None = None
    notify: tuple[Webhook, ...] = ()
    grafana: Mapping[str, Any] | None = None  # url, token, dashboard_uid, panel_id, tags, timeout

    @property
    def faults_end(self) -> float:
        return max((f.end for f in self.faults), default=0.0)


@dataclass(frozen=True)
class FaultShape:
    """What the model needs to know about a fault type to validate a file."""

    params: Obj
    target_kinds: tuple[str, ...]
    instant: bool = False  # e.g. process.kill: no duration, nothing to hold
    # rules across the target and the parameters that no schema expresses; each problem is
    # (path below the fault, e.g. "target.pods.port" or "with.signal", what is wrong and what
    # to do), reported by `chaos validate` at that field's line
    check: Callable[[Target, Mapping[str, Any]], Sequence[tuple[str, str]]] | None = None


@dataclass(frozen=True)
class Vocabulary:
    """The extension points' view for validation: faults, target kinds, probes, check grammar.

    The model sits below faults and slo, so the layers above hand their registries in.
    """

    faults: Mapping[str, FaultShape]
    targets: Mapping[str, Schema]
    probes: Schema
    # raises ValueError with the expectation
    parse_check: Callable[[str, frozenset[str]], ParsedCheck]
