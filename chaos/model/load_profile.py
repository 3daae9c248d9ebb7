"""What the schema alone cannot check in `hypothesis.traffic`: that something sets the rate,
that each stage has one, that a spike happens while the run still sends traffic, and that a
request mix sends something, to the one origin the connection pool serves.

Kept apart from the loader so the traffic's rules read in one place; every problem is located
at the node it is about, with what to write instead.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import yaml

from chaos.model import source
from chaos.model.experiment import CheckSpec, FaultSpec, Hypothesis, ParsedCheck
from chaos.model.schema import INVALID, Context
from chaos.units import format_duration

PATH = "hypothesis.traffic"


def _item(node: yaml.Node | None, i: int) -> yaml.Node | None:
    if isinstance(node, yaml.SequenceNode) and i < len(node.value):
        return node.value[i]  # type: ignore[no-any-return]
    return node


def check_traffic(raw: Any, node: yaml.Node | None, ctx: Context) -> None:
    """Rate, stages and mix of a checked `traffic:` mapping (INVALID parts were reported)."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("http"), Mapping):
        return
    http, profile, mix = raw["http"], raw.get("profile"), raw.get("mix")
    http_node = source.child(node, "http")
    profile_node = source.child(node, "profile")
    if profile is None and http.get("rate") is None:
        ctx.problem(http_node, f"{PATH}.http.rate", "required field is missing: write "
                    "`rate: 100/s`, or give a load profile (`traffic.profile: {stages: [...]}` "
                    "or `{spike: {...}}`)")
    elif isinstance(profile, Mapping):
        for key in ("rate", "ramp"):
            if http.get(key) not in (None, 0, 0.0):
                ctx.problem(source.child(http_node, key), f"{PATH}.http.{key}",
                            f"traffic.profile sets the rate over time: remove "
                            f"traffic.http.{key} (or the profile)")
        if profile.get("kind") == "stages" and isinstance(profile.get("spec"), Sequence):
            stages_node = source.child(profile_node, "stages")
            for i, stage in enumerate(profile["spec"]):
                if isinstance(stage, Mapping) and stage.get("rate") is None:
                    ctx.problem(_item(stages_node, i), f"{PATH}.profile.stages[{i}].rate",
                                f"stage {i + 1} has no rate: give every stage one, like "
                                "`{rate: 500/s, for: 1m}` (0/s for a pause)")
        if profile.get("kind") == "breaking_point" and isinstance(profile.get("spec"), Mapping):
            _check_breaking_point(profile["spec"], raw.get("workers"),
                                  source.child(profile_node, "breaking_point"), ctx)
    if isinstance(mix, Sequence) and not isinstance(mix, str):
        _check_mix(mix, http, source.child(node, "mix"), ctx)
    workers = raw.get("workers")
    if isinstance(workers, Mapping):
        _check_remote(workers, source.child(node, "workers"), ctx)
    if isinstance(workers, Mapping) and str(workers.get("count")).isdigit():
        count, have = int(workers["count"]), available_cores()
        if count > have and not workers.get("force"):
            ctx.problem(source.child(node, "workers"), f"{PATH}.workers",
                        f"{count} workers on {have} core(s) would share cores, lag, and make "
                        f"windows INVALID: write `workers: auto` (one per core), at most "
                        f"{have}, or `workers: {{count: {count}, force: true}}` if you mean it")


def available_cores() -> int:
    """The cores this process may run on (what `workers: auto` starts)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(workers: Mapping[str, Any] | None) -> int:
    """How many generator processes `traffic.workers` asks for (1: the runner's own loop)."""
    count = str((workers or {}).get("count") or "1")
    return available_cores() if count == "auto" else int(count)


REMOTE_ONLY = ("listen", "token", "connect_within", "max_clock_error")


def _check_remote(workers: Mapping[str, Any], node: yaml.Node | None, ctx: Context) -> None:
    """Remote workers are opt-in: the run listens only where `listen` says, for workers that
    prove `token`; those keys mean nothing without `remote`, and `count` nothing with it."""
    where = f"{PATH}.workers"
    if workers.get("remote") is INVALID:
        return
    if isinstance(workers.get("kubernetes"), Mapping):
        _check_kubernetes(workers, node, ctx)
        return
    if workers.get("remote") is None:
        for key in REMOTE_ONLY:
            if source.child(node, key) is not None:
                ctx.problem(source.child(node, key), f"{where}.{key}",
                            f"only for workers on other hosts: add `remote: N` (how many "
                            f"`chaos traffic-worker` processes join), or remove {key}")
        return
    if source.child(node, "count") is not None:
        ctx.problem(source.child(node, "count"), f"{where}.count",
                    "remote workers send the whole schedule: remove count (or remote)")
    for key, example in (("listen", 'listen: "10.0.0.5:7070"'),
                         ("token", 'token: "${CHAOS_WORKER_TOKEN}"')):
        if workers.get(key) is None and source.child(node, key) is None:
            ctx.problem(node, f"{where}.{key}",
                        f"required field is missing with remote workers: write `{example}`")
    if isinstance(workers.get("listen"), str) and not _port(workers["listen"]):
        ctx.problem(source.child(node, "listen"), f"{where}.listen",
                    f"{workers['listen']!r} has no port from 1 to 65535: write HOST:PORT, like "
                    "10.0.0.5:7070 (the host is the address workers reach, 0.0.0.0 for all)")


UNREACHABLE = ("0.0.0.0", "::", "localhost", "127.", "::1", "[::]", "[::1]")


def _check_kubernetes(workers: Mapping[str, Any], node: yaml.Node | None,
                      ctx: Context) -> None:
    """Kubernetes workers: the pods connect to `advertise`, the run listens on `listen` and
    makes its own token; `count`, `remote` and a token of the file's own mean nothing here."""
    where, spec = f"{PATH}.workers", workers["kubernetes"]
    here = source.child(node, "kubernetes")
    for key, instead in (("count", "kubernetes.replicas says how many"),
                         ("remote", "kubernetes.replicas says how many"),
                         ("listen", "write it as kubernetes.listen"),
                         ("token", "the run makes one and hands it to the pods in a Secret")):
        if source.child(node, key) is not None:
            ctx.problem(source.child(node, key), f"{where}.{key}",
                        f"not with kubernetes workers: remove {key} ({instead})")
    for key in ("listen", "advertise"):
        if isinstance(spec.get(key), str) and not _port(spec[key]):
            ctx.problem(source.child(here, key), f"{where}.kubernetes.{key}",
                        f"{spec[key]!r} has no port from 1 to 65535: write HOST:PORT, like "
                        "10.0.0.5:7070")
    advertise = spec.get("advertise")
    if isinstance(advertise, str) and advertise.rpartition(":")[0].startswith(UNREACHABLE):
        ctx.problem(source.child(here, "advertise"), f"{where}.kubernetes.advertise",
                    f"{advertise!r} is not an address pods can reach: write the runner's "
                    "address as the cluster sees it (its IP on a network the nodes route to, "
                    "or a NodePort/load balancer in front of it), like 10.0.0.5:7070")


def kubernetes_workers(traffic: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """`traffic.workers.kubernetes` (checked) with the join settings of `traffic.workers`."""
    workers = (traffic or {}).get("workers")
    if not isinstance(workers, Mapping) or not isinstance(workers.get("kubernetes"), Mapping):
        return None
    return {**workers["kubernetes"], "connect_within": workers["connect_within"],
            "max_clock_error": workers["max_clock_error"]}


def _port(address: str) -> int:
    port = address.rpartition(":")[2]
    return int(port) if port.isdigit() and 0 < int(port) < 65536 else 0


def remote_workers(traffic: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """`traffic.workers` when its workers join from other hosts (checked), else None."""
    workers = (traffic or {}).get("workers")
    if not isinstance(workers, Mapping) or workers.get("remote") is None:
        return None
    return {key: workers[key] for key in ("remote", *REMOTE_ONLY)}


def _check_breaking_point(spec: Mapping[str, Any], workers: Any, node: yaml.Node | None,
                          ctx: Context) -> None:
    where = f"{PATH}.profile.breaking_point"
    if spec.get("max") is None:
        ctx.problem(node, f"{where}.max", "required field is missing: a search needs an upper "
                    "bound it never passes, like `max: 2000/s` (a service that never breaks "
                    "would otherwise be loaded without end)")
    elif isinstance(spec.get("from"), float) and spec["from"] > spec["max"]:
        ctx.problem(source.child(node, "max"), f"{where}.max",
                    "below `from`: the search would try nothing; raise max or lower from")
    if not spec.get("until"):
        ctx.problem(node, f"{where}.until", "a breaking point needs a stop condition: add "
                    "`until: [availability < 99%, latency.p99 > 500ms]` (what \"broken\" "
                    "means for this service)")
    if isinstance(spec.get("step"), float) and spec["step"] <= 0:
        ctx.problem(source.child(node, "step"), f"{where}.step",
                    "expected a rate above 0/s, like `step: 100/s`")
    if isinstance(workers, Mapping) and (str(workers.get("count")) != "1"
                                         or workers.get("remote") is not None
                                         or workers.get("kubernetes") is not None):
        ctx.problem(node, f"{where}", "a breaking-point search runs in the runner's own "
                    "generator: remove traffic.workers (one loop keeps ~20,000 req/s)")


def check_capacity_floors(raw: Any, groups: tuple[tuple[CheckSpec, ...], ...],
                          problem: Callable[[CheckSpec, str, str], None]) -> None:
    """`capacity >= 800/s` is judged on a breaking-point search, once per phase window in
    `checks`; a guardrail or `during` check on it would judge nothing while the run goes on."""
    profile = raw.get("profile") if isinstance(raw, Mapping) else None
    searching = isinstance(profile, Mapping) and profile.get("kind") == "breaking_point"
    for path, group in zip(("checks", "during.checks", "during.abort"), groups):
        for i, spec in enumerate(group):
            if spec.parsed.needs.judged_on != "search":
                continue
            here = f"hypothesis.{path}[{i}]"
            if path != "checks":
                problem(spec, here, f"{spec.text!r} is judged once a search ends, not while the "
                                    "run goes on: move it to hypothesis.checks")
            elif not searching:
                problem(spec, here, f"{spec.text!r} needs a breaking-point search to judge: add "
                                    "`traffic.profile.breaking_point: {from: ..., step: ..., "
                                    "every: ..., max: ..., until: [...], under_fault: true}`")


def check_until(raw: Any, node: yaml.Node | None, ctx: Context,
                parse: Callable[[str], ParsedCheck]) -> None:
    """A breaking point's stop conditions are checks over the traffic, in the check grammar."""
    profile = raw.get("profile") if isinstance(raw, Mapping) else None
    if not isinstance(profile, Mapping) or profile.get("kind") != "breaking_point":
        return
    until = profile["spec"].get("until") if isinstance(profile.get("spec"), Mapping) else None
    until_node = source.child(source.child(source.child(node, "profile"), "breaking_point"),
                              "until")
    for i, text in enumerate(until or ()):
        if not isinstance(text, str):
            continue
        where = f"{PATH}.profile.breaking_point.until[{i}]"
        try:
            parsed = parse(text)
        except ValueError as exc:
            ctx.problem(_item(until_node, i), where, str(exc))
            continue
        if not parsed.needs.stops_search:
            ctx.problem(_item(until_node, i), where,
                        f"{text!r} is not judged on the traffic: a stop condition is like "
                        "`availability < 99%`, `error_rate > 1%` or `latency.p99 > 500ms`")


def _check_mix(mix: Sequence[Any], http: Mapping[str, Any], node: yaml.Node | None,
               ctx: Context) -> None:
    entries = [m for m in mix if isinstance(m, Mapping)]
    if len(entries) == len(mix) and entries and not any(m.get("weight") for m in entries):
        ctx.problem(node, f"{PATH}.mix", "every weight is 0, so no request would be sent: give "
                    "at least one entry a weight above 0, like `weight: 1`")
    url = http.get("url")
    if not isinstance(url, str):
        return
    origin = _origin(url)
    for i, entry in enumerate(mix):
        request = entry.get("http") if isinstance(entry, Mapping) else None
        other = request.get("url") if isinstance(request, Mapping) else None
        if isinstance(other, str) and _origin(other) != origin:
            where = source.child(source.child(_item(node, i), "http"), "url")
            ctx.problem(where, f"{PATH}.mix[{i}].http.url",
                        f"{other} is not on {origin[0]}://{origin[1]}:{origin[2]} like "
                        "traffic.http.url: one generator keeps connections to one origin; "
                        "send to that origin, or run another experiment for the other one")


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError:
        port = -1
    return parts.scheme, parts.hostname or "", port


def traffic_span(hypothesis: Hypothesis, faults: Sequence[FaultSpec]) -> float:
    """How long the run sends traffic at least: before's window, the faults, after's settle
    and window (recovery may add more)."""
    during = max((f.end for f in faults), default=0.0)
    after = hypothesis.after
    return hypothesis.before.window + during + after.settle + after.window


def search_seconds(spec: Mapping[str, Any]) -> float:
    """How long one breaking-point search lasts: its steps, `every` each (as its schedule)."""
    first, step, top = float(spec["from"]), float(spec["step"]), float(spec["max"])
    return (int(math.floor((top - first) / step + 1e-9)) + 1) * float(spec["every"])


def check_under_fault(hypothesis: Hypothesis | None, faults: Sequence[FaultSpec] | None,
                      root: yaml.Node, ctx: Context) -> None:
    """A search under fault compares two searches: the first must end before the faults
    start, and a fault must be held for the whole second one (it starts at the first
    injection), or the two numbers compare nothing."""
    if hypothesis is None or faults is None or faults is INVALID:
        return
    profile = hypothesis.traffic_profile
    if not profile or profile.get("kind") != "breaking_point" or not (
            profile["spec"].get("under_fault")):
        return
    node = source.child(source.child(source.child(source.child(
        root, "hypothesis"), "traffic"), "profile"), "breaking_point")
    where = f"{PATH}.profile.breaking_point.under_fault"
    if not faults:
        ctx.problem(source.child(node, "under_fault") or root, where,
                    "there are no faults to search under: add a fault, or remove under_fault")
        return
    span = search_seconds(profile["spec"])
    if hypothesis.before.window < span:
        before = source.child(source.child(root, "hypothesis"), "before")
        ctx.problem(source.child(before, "window") or before or root,
                    "hypothesis.before.window",
                    f"the search without faults takes {format_duration(span)} and must end "
                    f"before the first fault: make before.window at least "
                    f"{format_duration(span)} (or fewer steps)")
    first = min(f.start for f in faults)
    if not any(f.start == first and f.duration >= span for f in faults):
        i, fault = next((i, f) for i, f in enumerate(faults) if f.start == first)
        ctx.problem(source.child(_item(source.child(root, "faults"), i), "duration") or root,
                    f"faults[{i}].duration",
                    f"the search under fault starts when {fault.name} is injected and takes "
                    f"{format_duration(span)}: hold {fault.name} at least that long "
                    f"(duration: {format_duration(span)})")


def check_spike(hypothesis: Hypothesis | None, faults: Sequence[FaultSpec] | None,
                root: yaml.Node, ctx: Context) -> None:
    """A spike that ends after the traffic does is never measured whole."""
    if hypothesis is None or faults is None or faults is INVALID:
        return
    profile = hypothesis.traffic_profile
    if not profile or profile.get("kind") != "spike":
        return
    spike = profile["spec"]
    end = float(spike["at"]) + float(spike["for"])
    span = traffic_span(hypothesis, faults)
    if end > span:
        node = source.child(source.child(source.child(source.child(
            root, "hypothesis"), "traffic"), "profile"), "spike")
        ctx.problem(node or root, f"{PATH}.profile.spike",
                    f"the spike ends at {format_duration(end)} but the run sends traffic for "
                    f"about {format_duration(span)} (before.window + the faults + "
                    "after.settle + after.window): start it earlier, shorten it, or lengthen "
                    "the run")


__all__ = ["available_cores", "check_capacity_floors", "check_spike", "check_traffic",
           "check_under_fault", "check_until", "kubernetes_workers", "remote_workers", "search_seconds",
           "traffic_span", "worker_count"]
