"""A run's events as the journal builder sees them, covering every part of the journal: load
profile stages, a guardrail measured and one never measured, both capacity searches, an
alert, probe samples and traffic seconds. The result object stands in for the engine's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaos.errors import ExitCode
from chaos.runner.events import Event

VERDICT = {"check": "availability >= 99%", "status": "FAIL", "value": 0.9, "measured": "90%",
           "threshold": 0.99, "window": 2.0, "events": 40, "source": "traffic", "reason": ""}
STEP = {"rate": 100.0, "requests": 100, "errors": 0, "p99": 0.01, "status": "held"}


def events() -> list[Event]:
    def e(name: str, when: float, **data: Any) -> Event:
        return Event(name, when, 1_800_000_000.0 + when, data)

    return [
        e("run.started", 0.0, run="r", seed=7, dry_run=False),
        e("phase.started", 0.5, phase="before"),
        e("traffic.stage", 0.6, phase="before", stage="warm", requests=10, errors=0, p99=0.01),
        e("check.evaluated", 2.5, phase="before", verdict=VERDICT),
        e("phase.finished", 2.5, phase="before", passed=False),
        e("phase.started", 2.6, phase="during"),
        e("guardrail.evaluated", 3.0, check="availability < 50%", breached=False,
          verdict=VERDICT),
        e("guardrail.evaluated", 3.1, check="p99 > 2s", breached=False, verdict=None),
        e("phase.finished", 4.0, phase="during", passed=True),
        e("probe.sampled", 1.2, at=1.2, probe="home", ok=True, latency=0.003),
        e("probe.sampled", 1.7, at=1.7, probe="home", ok=False, latency=0.5),
        e("traffic.second", 2.0, t=0, requests=100, errors=1, p50=0.004, p95=0.008, p99=0.01,
          lag_p99=0.001),
        e("capacity.measured", 5.0, search="baseline", sustainable_rate=200.0, broken_at=300.0,
          broken_by="latency.p99 > 250ms", invalid=None, steps=[STEP]),
        e("capacity.measured", 6.0, search="under_fault", sustainable_rate=100.0,
          broken_at=200.0, broken_by="latency.p99 > 250ms", invalid=None, steps=[STEP],
          faults=["slow-db"]),
        e("alert.measured", 6.5, alert="HighErrorRate", expected=True, time_to_detect=1.5,
          status="fired", first_firing=4.0),
        e("run.finished", 7.0, run="r", verdict="deviated", exit_code=1),
    ]


@dataclass
class Result:
    run: str = "r"
    exit_code: ExitCode = ExitCode.DEVIATED
    reason: str = "availability >= 99% failed"
    injections: list[Any] = field(default_factory=list)
    recovery: float | None = 0.25
    detected: float | None = 1.5

    @property
    def verdict(self) -> str:
        return "deviated"


SUMMARY = {"title": "t", "source": "t.yaml", "sha256": "0" * 64, "description": "", "tags": [],
           "variables": {}, "services": [], "faults": [], "checks": ["availability >= 99%"],
           "slo": {"objective": 0.99, "period": 3600.0}}
