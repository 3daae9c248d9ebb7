"""HTTP faults: what a dependency answering errors, slowly or not at all does to a service.

They run on the fault proxy started with `protocol: http` (the `proxy` target kind), which reads
each request and applies the faults whose match it meets: `path` / `path_prefix` / `path_regex`,
`method`, request `headers`, and a `percent` of the matching requests (drawn from the run's seed,
so a rerun hits the same sequence). `chaos validate` refuses what can never be applied — an
unknown status code, a regex that does not compile, a path that does not start with `/`, a plain
TCP proxy — at its line, and warns about a `match` no request can meet (the fault would be
injected and reverted with nothing happening in between).

On `pods` targets (with the application's `port`), the in-pod agent runs the same proxy inside
each pod behind an nftables redirect of that port (chaos.adapters.kubernetes.inpod_http).
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import re

from chaos.faults.registry import FaultRegistry, FaultType
from chaos.model.advice import Advice
from chaos.model.experiment import Target
from chaos.model.schema import Duration, Field, Int, Map, Obj, Percent, Rate, Regex, Size, Str

PATH = r"/.*"
MATCH = {
    "path": Str("match: only requests for exactly this path (the query is ignored)",
                pattern=PATH),
    "path_prefix": Str("match: only requests whose path starts with this", pattern=PATH),
    "path_regex": Regex("match: only requests whose whole path matches this regular expression"),
    "method": Str("match: only these methods, e.g. GET or GET,POST",
                  pattern=r"[A-Za-z]+(,[A-Za-z]+)*"),
    "headers": Map(Regex(), "match: request headers that must be present, each value searched "
                            "with a regular expression, e.g. {x-user: ^test-}"),
    "percent": Percent("match: share of the matching requests hit (each request draws from "
                       "the run's seed)", "100%"),
}
STATUS_DOC = "HTTP status code of the answer, e.g. 503"


def _status(value: Any) -> bool:
    return value is None or value in HTTPStatus._value2member_map_


POD_FIELDS_UNUSED = ("device", "host", "cidr", "direction")


def pods_check(target: Target) -> list[tuple[str, str]]:
    """In pods, the in-pod agent redirects the application's `port` to its HTTP fault proxy."""
    if target.kind != "pods":
        return []
    problems = [(f"target.pods.{key}", f"{key} is not used by HTTP faults in pods (they "
                 "redirect every new connection to `port`): remove it")
                for key in POD_FIELDS_UNUSED if target.selector.get(key) is not None]
    if target.selector.get("protocol") not in (None, "tcp"):
        problems.append(("target.pods.protocol", "HTTP runs over TCP: remove protocol"))
    if target.selector.get("port") is None:
        problems.append(("target.pods.port", "HTTP faults in pods redirect the application's "
                         "port to a fault proxy in the pod: add it, e.g. `port: 8080`"))
    return problems


def http_check(target: Target, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = pods_check(target)
    if target.kind == "proxy" and target.selector.get("protocol") == "tcp":
        problems.append(("target.proxy.protocol", "HTTP faults need a proxy that speaks HTTP: "
                         "set protocol: http (or leave it out)"))
    if not _status(params.get("status")):
        problems.append(("with.status", f"{params['status']} is not a registered HTTP status "
                         "code; use one like 500, 502, 503 or 429"))
    return problems + never_matches(params)


def never_matches(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Warnings (Advice) for a `match` that no request meets: valid, but a fault that does
    nothing is rarely what was meant."""
    warnings: list[tuple[str, str]] = []
    path, prefix, regex = params.get("path"), params.get("path_prefix"), params.get("path_regex")
    if path is not None and prefix is not None and not path.startswith(prefix):
        warnings.append(("with.path_prefix", Advice(
            f"no request can match both path {path} and path_prefix {prefix}: remove one")))
    if path is not None and regex is not None and not re.fullmatch(regex, path):
        warnings.append(("with.path_regex", Advice(
            f"no request can match both path {path} and path_regex {regex!r} (it does not "
            "match that path): remove one")))
    if params.get("percent") == 0:
        warnings.append(("with.percent", Advice(
            "0% of the matching requests are hit: the fault does nothing; raise it or remove "
            "the fault")))
    return warnings


def _fault(name: str, summary: str, fields: Mapping[str, Any]) -> FaultType:
    return FaultType(name=name, summary=summary, params=Obj({**fields, **MATCH}),
                     target_kinds=("proxy", "pods"), check=http_check)


ABORT = _fault("http.abort", "answer matching requests with an error status instead of "
               "forwarding them", {
                   "status": Field(Int(STATUS_DOC, min=100, max=599), required=True),
                   "body": Str("body of the answer", ""),
                   "set_headers": Map(Str(), "headers of the answer, e.g. {retry-after: '5'}"),
               })
DELAY = _fault("http.delay", "hold matching requests (or their responses) for a while", {
    "delay": Field(Duration("how long each matching request is held", max=3600), required=True),
    "jitter": Duration("random variation, uniform in [-jitter, +jitter]", "0ms", max=3600),
    "phase": Str("request: before it is forwarded; response: before the answer is passed on",
                 "request", choices=("request", "response")),
})
RESET = _fault("http.reset", "forward matching requests, then reset the connection part-way "
               "through the response", {
                   "after": Size("bytes of the response (head included) passed on before the "
                                 "reset; 0 resets before any", "0"),
               })
REPLACE = _fault("http.replace", "change the status, headers or body of the real responses", {
    "status": Int(STATUS_DOC, min=100, max=599),
    "body": Str("body sent instead of the real one"),
    "set_headers": Map(Str(), "headers set on the response (replacing those of the same name)"),
})
THROTTLE = _fault("http.throttle", "answer 429 Too Many Requests above a request rate, like a "
                  "rate limiter upstream", {
                      "rate": Field(Rate("requests per second let through (a token bucket "
                                         "holding one second's worth)"), required=True),
                  })

FAULTS = (ABORT, DELAY, RESET, REPLACE, THROTTLE)


def register(registry: FaultRegistry) -> None:
    for fault in FAULTS:
        registry.add(fault)
