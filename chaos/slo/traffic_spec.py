"""What the open-model generator sends: the traffic's declaration and its requests' bytes.

`TrafficSpec` is the frozen form of an experiment's `traffic:` section (`traffic_from_spec`),
`offset_of` the exact due time of request n on a ramp, `connection_cap` the pool's bound, and
`weighted_cycle` the smooth weighted round robin of a `mix`. The generator that sends them on
schedule is chaos.slo.traffic (which re-exports these names).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from chaos.errors import ProbeError
from chaos.slo.schedule import RateSchedule

MAX_CONNECTIONS = 10000  # the default pool never grows past this (`connections` may say more)
FD_RESERVE = 256  # file descriptors left for everything else when the pool is sized


@dataclass(frozen=True)
class Request:
    """One request of a `mix` (same scheme, host and port as the traffic's url)."""

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True)
class TrafficSpec:
    url: str
    rate: float  # requests per second, once ramped up (the peak of `schedule` when it is set)
    ramp: float = 0.0  # seconds to rise linearly from 0 to `rate`
    timeout: float = 2.0
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    connections: int | None = None  # None: enough for rate x timeout (connection_cap)
    verify_tls: bool = True
    max_lag: float = 0.025  # p99 scheduler lag above this makes a window INVALID
    schedule: RateSchedule | None = None  # a load profile; None: `rate` after `ramp`
    mix: tuple[tuple[int, Request], ...] = ()  # weighted requests instead of url/method/body
    share: tuple[int, int] = (0, 1)  # worker k of N sends requests k, k + N, k + 2N, ...


def offset_of(n: int, rate: float, ramp: float) -> float:
    """Seconds after the start at which request `n` (from 0) is due: a linear ramp from 0 to
    `rate` over `ramp` seconds, then constant. Exact, so no drift accumulates."""
    in_ramp = rate * ramp / 2
    if n < in_ramp:
        return math.sqrt(2 * ramp * n / rate)
    return ramp + (n - in_ramp) / rate


def connection_cap(spec: TrafficSpec) -> int:
    """The most connections the pool opens: as declared, else what the open model can need at
    most (every request in flight until its timeout) with a margin, at most MAX_CONNECTIONS."""
    if spec.connections is not None:
        return spec.connections
    return min(MAX_CONNECTIONS, math.ceil(spec.rate * spec.timeout * 1.1) + 10)


def fd_room(wanted: int) -> int:
    """Connections the open-file limit allows, raising the soft limit towards the hard one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < need:
        raised = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    return wanted if soft == resource.RLIM_INFINITY else max(1, min(wanted, soft - FD_RESERVE))


def request_bytes(request: Request) -> bytes:
    parts = urlsplit(request.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = [f"{request.method} {target} HTTP/1.1", f"Host: {parts.netloc}",
            "User-Agent: chaos-traffic"]
    names = {k.lower() for k, _ in request.headers}
    head += [f"{k}: {v}" for k, v in request.headers]
    if (request.body or request.method in ("POST", "PUT", "PATCH")) and (
            "content-length" not in names):
        head.append(f"Content-Length: {len(request.body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body


def weighted_cycle(mix: tuple[tuple[int, Request], ...]) -> list[Request]:
    """One period of a smooth weighted round robin (nginx's): weights 8:2 give A A A A B A A A
    A B, so the proportions hold over any stretch of a period, not only over a whole one."""
    divisor = math.gcd(*(w for w, _ in mix))
    weights = [w // divisor for w, _ in mix]
    current, total, cycle = [0] * len(mix), sum(weights), []
    for _ in range(total):
        current = [c + w for c, w in zip(current, weights)]
        best = max(range(len(mix)), key=current.__getitem__)
        current[best] -= total
        cycle.append(mix[best][1])
    return cycle


def traffic_from_spec(spec: Any, profile: Any = None, mix: Any = ()) -> TrafficSpec:
    """The model's frozen `traffic.http` mapping (and `traffic.profile`, `traffic.mix`) ->
    TrafficSpec."""
    schedule = None
    if profile:
        kind, body = profile["kind"], profile["spec"]
        schedule = (RateSchedule.of_stages(body) if kind == "stages"
                    else RateSchedule.of_spike(body) if kind == "spike"
                    else RateSchedule.of_breaking_point(body))
    if (spec.get("rate") is None and schedule is None) or spec.get("url") is None:
        raise ProbeError("traffic.http needs url and rate (or traffic.profile)")
    body = spec.get("body") or ""
    requests = tuple(
        (int(m["weight"]), _request_of(m["http"])) for m in mix or () if m["weight"])
    return TrafficSpec(
        url=spec["url"],
        rate=schedule.peak if schedule is not None else float(spec["rate"]),
        ramp=float(spec.get("ramp") or 0.0),
        timeout=float(spec.get("timeout") or 2.0), method=spec.get("method") or "GET",
        headers=tuple((str(k), str(v)) for k, v in (spec.get("headers") or {}).items()),
        body=body.encode(),
        connections=int(spec["connections"]) if spec.get("connections") else None,
        verify_tls=bool(spec.get("verify_tls", True)),
        max_lag=float(spec.get("max_lag") or 0.025),
        schedule=schedule, mix=requests)


def _request_of(http: Any) -> Request:
    return Request(url=http["url"], method=http.get("method") or "GET",
                   headers=tuple((str(k), str(v)) for k, v in (http.get("headers") or {}).items()),
                   body=(http.get("body") or "").encode())
