"""Alerts as a hypothesis source: did monitoring notice the faults?

Alertmanager (API v2, `/api/v2/alerts`: active, silenced and inhibited alerts) or Prometheus
(`/api/v1/alerts`: pending and firing) is asked for the alerts it knows right now; the detection
watch (chaos.runner.detection) polls this every `detection.every` and times what it sees. The
HTTP side is Prometheus' (`Prometheus.ask`, over chaos.slo.http_client): same TLS, credentials,
headers, time limit and error messages, so an unreachable Alertmanager reads like an unreachable
Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chaos.errors import truncate
from chaos.slo.prometheus import ALERTMANAGER_API, Prometheus, QueryFailed

__all__ = ["Alert", "AlertReader", "AlertSource", "QueryFailed", "matches"]


@dataclass(frozen=True)
class Alert:
    """One alert as the source reports it now."""

    labels: Mapping[str, str]
    state: str  # pending | firing | silenced | inhibited (Alertmanager: suppressed, and why)
    since: float | None = None  # epoch the source says it became active (startsAt / activeAt)

    @property
    def firing(self) -> bool:
        """Firing means the alert condition held for its `for:`; a silenced or inhibited alert
        fired too (monitoring noticed), it just paged nobody."""
        return self.state != "pending"


class AlertReader(Protocol):
    """What the detection watch polls: an AlertSource, or a scripted one in tests."""

    @property
    def shown(self) -> str:
        """The source as the journal names it (no credentials)."""

    async def alerts(self) -> list[Alert]:
        """Every alert the source knows now; QueryFailed when it cannot say."""


def matches(matchers: Sequence[tuple[str, str, str]], labels: Mapping[str, str]) -> bool:
    """Alertmanager's matcher semantics: a missing label is the empty string; regexes anchored."""
    for label, op, value in matchers:
        have = labels.get(label, "")
        if op == "=" and have != value or op == "!=" and have == value:
            return False
        if op in ("=~", "!~") and (re.fullmatch(value, have) is None) == (op == "=~"):
            return False
    return True


@dataclass(frozen=True)
class AlertSource:
    kind: str  # alertmanager | prometheus
    url: str
    timeout: float = 5.0
    headers: Mapping[str, str] | None = None
    verify_tls: bool = True
    ca_file: str | None = None

    @classmethod
    def from_spec(cls, kind: str, spec: Mapping[str, Any]) -> AlertSource:
        return cls(kind, spec["url"].rstrip("/"), float(spec.get("timeout") or 5.0),
                   dict(spec.get("headers") or {}), spec.get("verify_tls") is not False,
                   spec.get("ca_file"))

    @property
    def _prometheus(self) -> Prometheus:
        return Prometheus(self.url, None, None, None, self.timeout, dict(self.headers or {}),
                          self.verify_tls, self.ca_file)

    @property
    def shown(self) -> str:
        return f"{self.kind}:{self._prometheus.shown}"

    async def alerts(self) -> list[Alert]:
        """Every alert the source knows now; QueryFailed when it cannot say."""
        if self.kind == "prometheus":
            data = await self._prometheus._get("/api/v1/alerts", {})
            return [Alert(_labels(a), str(a.get("state") or "firing"), _epoch(a.get("activeAt")))
                    for a in data.get("alerts") or () if isinstance(a, dict)]
        return [_am_alert(a) for a in await self._am_alerts() if isinstance(a, dict)]

    async def _am_alerts(self) -> list[Any]:
        reply = await self._prometheus.ask(
            f"{self.url}/api/v2/alerts?active=true&silenced=true&inhibited=true",
            ALERTMANAGER_API, "chaos-detection")
        try:
            doc = json.loads(reply.body)
        except ValueError:
            doc = None
        if reply.status != 200 or not isinstance(doc, list):
            hint = " (no Alertmanager API v2 there: check detection.alertmanager.url)" \
                if reply.status == 404 else ""
            raise QueryFailed(f"Alertmanager answered HTTP {reply.status}: "
                              f"{truncate(reply.text) or 'no body'}{hint}")
        return doc


def _am_alert(raw: Mapping[str, Any]) -> Alert:
    found = raw.get("status")
    status: Mapping[str, Any] = found if isinstance(found, dict) else {}
    state = "firing"
    if status.get("state") == "suppressed":
        state = "silenced" if status.get("silencedBy") else "inhibited"
    return Alert(_labels(raw), state, _epoch(raw.get("startsAt")))


def _labels(raw: Mapping[str, Any]) -> dict[str, str]:
    labels = raw.get("labels")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def _epoch(text: Any) -> float | None:
    """RFC 3339 as Go writes it (nanoseconds, `Z`) -> epoch seconds; None if unreadable."""
    if not isinstance(text, str) or text.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(_FRACTION.sub(r"\1", text, 1).replace("Z", "+00:00")) \
            .timestamp()
    except ValueError:
        return None
