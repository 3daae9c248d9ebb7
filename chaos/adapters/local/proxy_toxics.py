"""Toxics: what the fault proxy does to a byte stream, as plain data.

A toxic is what a network fault becomes on a proxy: a kind (latency, bandwidth, slicer,
slow_close, timeout, reset_peer, limit_data, down), its parameters, the direction it applies to,
a toxicity (the share of connections it hits, each connection deciding once) and an expiry
time, so a proxy drops a toxic by itself even when the runner and its watchdog are both gone.
Toxics travel as JSON over the proxy's control channel and sit in revert specs by id.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from chaos.model.experiment import thaw

TCP_KINDS = ("latency", "bandwidth", "slicer", "slow_close", "timeout", "reset_peer",
             "limit_data", "down")
# HTTP rules (proxy_http): per request, on a proxy started with `protocol: http`
HTTP_KINDS = ("http_abort", "http_delay", "http_reset", "http_replace", "http_throttle")
# TLS (proxy_tls): at the start of each connection hit, on a plain TCP proxy
TLS_KINDS = ("tls_certificate", "tls_handshake_delay", "tls_reset_handshake")
RULE_KINDS = (*HTTP_KINDS, "tls_certificate")  # those carrying a structured `rule`
KINDS = (*TCP_KINDS, *HTTP_KINDS, *TLS_KINDS)
DIRECTIONS = ("downstream", "upstream", "both")

# fault type -> toxic kind, and how its parameters map
FAULT_KINDS = {
    "network.latency": "latency",
    "network.bandwidth": "bandwidth",
    "network.slicer": "slicer",
    "network.slow_close": "slow_close",
    "network.timeout": "timeout",
    "network.reset": "reset_peer",
    "network.limit_data": "limit_data",
    "network.partition": "down",
    **{f"http.{kind.removeprefix('http_')}": kind for kind in HTTP_KINDS},
    **{f"tls.{kind.removeprefix('tls_')}": kind for kind in TLS_KINDS},
}


def per_request(fault_type: str) -> bool:
    """The fault's toxic is an HTTP rule: the proxy must read requests, and `percent` draws
    from the run's seed per request."""
    return FAULT_KINDS[fault_type] in HTTP_KINDS


@dataclass(frozen=True)
class Toxic:
    id: str
    kind: str
    direction: str = "downstream"
    toxicity: float = 1.0
    params: Mapping[str, float] = field(default_factory=dict)
    expires: float | None = None  # epoch seconds; the proxy removes the toxic after it
    # http_* kinds and tls_certificate: the rule as plain data (match, status, body, seed...,
    # certificate); for http_* toxicity is the share of matching *requests* hit, each request
    # drawn from the rule's seed
    rule: Mapping[str, Any] | None = None

    def applies_to(self, direction: str) -> bool:
        return self.direction in ("both", direction)

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and (now or time.time()) >= self.expires

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "params": dict(self.params),
                "rule": None if self.rule is None else dict(self.rule)}

    def sample_delay(self, rng: random.Random) -> float:
        """Seconds of latency for one chunk: delay plus uniform jitter, never negative."""
        delay = self.params.get("delay", 0.0)
        jitter = self.params.get("jitter", 0.0)
        if jitter:
            delay += rng.uniform(-jitter, jitter)
        return max(0.0, delay)


def parse(data: Mapping[str, Any]) -> Toxic:
    """A toxic from control-channel JSON; ValueError names what is wrong."""
    kind = data.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown toxic kind {kind!r} (expected one of {', '.join(KINDS)})")
    direction = data.get("direction", "downstream")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}")
    toxicity = float(data.get("toxicity", 1.0))
    if not 0.0 <= toxicity <= 1.0:
        raise ValueError("toxicity must be between 0 and 1")
    ident = str(data.get("id") or "")
    if not ident:
        raise ValueError("a toxic needs an id")
    params = {str(k): float(v) for k, v in dict(data.get("params") or {}).items()}
    if any(v < 0 for v in params.values()):
        raise ValueError("toxic parameters cannot be negative")
    if kind == "bandwidth" and params.get("rate", 0) <= 0:
        raise ValueError("bandwidth needs a rate above 0 bytes/s")
    expires = data.get("expires")
    rule = data.get("rule")
    if (rule is not None) != (kind in RULE_KINDS) or not isinstance(rule or {}, dict):
        raise ValueError(f"{', '.join(RULE_KINDS)} toxics, and only they, carry a `rule` "
                         "(a JSON object)")
    return Toxic(ident, kind, direction, toxicity, params,
                 float(expires) if expires is not None else None, rule)


def from_fault(ident: str, fault_type: str, params: Mapping[str, Any], direction: str,
               toxicity: float, expires: float | None) -> Toxic:
    """The toxic a network fault becomes on a proxy target."""
    kind = FAULT_KINDS[fault_type]
    values: dict[str, float] = {}
    if kind in HTTP_KINDS:
        return http_rule(ident, kind, params, expires)
    if kind == "tls_certificate":
        rule = {k: os.path.abspath(v) if k in ("ca_cert", "ca_key") else v
                for k, v in params.items() if v is not None}
        return Toxic(ident, kind, "both", toxicity, {}, expires, rule)
    if kind == "tls_handshake_delay":
        return Toxic(ident, kind, "both", toxicity, {"delay": params["delay"]}, expires)
    if kind == "tls_reset_handshake":
        return Toxic(ident, kind, "both", toxicity, {}, expires)
    if kind == "latency":
        values = {"delay": params["delay"], "jitter": params.get("jitter") or 0.0}
    elif kind == "bandwidth":
        values = {"rate": float(params["rate"])}
    elif kind == "slicer":
        values = {"size": float(params.get("size") or 64), "variation":
                  float(params.get("variation") or 0), "delay": params.get("delay") or 0.0}
    elif kind == "slow_close":
        values = {"delay": params["delay"]}
    elif kind in ("timeout", "reset_peer"):
        values = {"after": params.get("after") or 0.0}
    elif kind == "limit_data":
        values = {"bytes": float(params["bytes"])}
    if kind == "down":
        direction, toxicity = "both", 1.0
    return Toxic(ident, kind, direction, toxicity, values, expires)


MATCH_KEYS = ("path", "path_prefix", "path_regex", "method", "headers")


def http_rule(ident: str, kind: str, params: Mapping[str, Any], expires: float | None) -> Toxic:
    """The toxic an http.* fault becomes: its `match` and action as JSON-ready data."""
    params = thaw(params)  # the loaded model is frozen (mappingproxy); rules travel as JSON
    match = {k: params[k] for k in MATCH_KEYS if params.get(k) is not None}
    action = {k: v for k, v in params.items()
              if k not in (*MATCH_KEYS, "percent") and v is not None}
    share = params.get("percent")
    return Toxic(ident, kind, "both", 1.0 if share is None else float(share), {}, expires,
                 {**action, "match": match})
