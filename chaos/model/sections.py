"""The sections of the experiment format, declared once as data with chaos.model.schema.

The same declarations check files (chaos.model.loader walks them and builds the model), publish
the JSON Schema (`chaos schema`), generate the field reference (docs/gen_reference.py) and lend
`vars` to game-day files (chaos.model.gameday); kept apart from the loader, they read as the
format itself. Fault parameters, target selectors and probe kinds are not fixed: they come from
the layers above through the Vocabulary.
"""

from __future__ import annotations

from typing import Any

import yaml

from chaos.model.experiment import Vocabulary, Webhook, frozen
from chaos.model.scalars import HTTP_URL
from chaos.model.schema import (
    Argv,
    Bool,
    Context,
    Duration,
    Field,
    Int,
    List,
    Map,
    Obj,
    OneOf,
    Percent,
    Rate,
    Schema,
    Str,
    scalar_as,
)

NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"
VAR_NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"  # as chaos.model.source substitutes them
MIN_EVERY = 0.05


class Raw(Schema):
    """Keeps the node for a second pass that needs context (fault params, checks)."""

    def __init__(self, doc: str = "", json: dict[str, Any] | None = None) -> None:
        self.doc, self.json = doc, json or {}

    def _check(self, node: yaml.Node, path: str, ctx: Context, depth: int) -> Any:
        return node

    def json_schema(self) -> dict[str, Any]:
        return self._with_doc(dict(self.json))


class VarDefault(Raw):
    """A `vars` default: a scalar, kept as written. Not substituted itself (no ${a} in ${b})."""

    def _check(self, node: yaml.Node, path: str, ctx: Context, depth: int) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            ctx.problem(node, path, "expected a string, number or boolean")
        return node.value


CHECKS = List(Raw("a check like `home >= 99%`", {"type": "string"}))

READY = OneOf(
    {
        "http": Str("URL that must answer 2xx"),
        "tcp": Str("host:port that must accept a connection", pattern=r".+:\d+"),
        "exec": Argv("command that must exit 0"),
        "delay": Duration("just wait this long"),
    },
    "how to tell the service is ready",
    common={"timeout": Duration("give up after", "10s", min=0.1)},
)

SERVICE = Obj({
    "name": Field(Str("service name, used by targets", pattern=NAME), required=True),
    "run": Field(Argv(), required=True),
    "cwd": Str("working directory, relative to the experiment file"),
    "env": Map(Str(), "extra environment variables"),
    "ready": READY,
    "stop": Obj({
        "signal": Str("signal that stops it", "TERM"),
        "timeout": Duration("then SIGKILL after", "5s"),
    }),
}, "a process started before the experiment and stopped after it")

BEFORE = Obj({
    "window": Duration("how long to sample", "3s", min=0),
    "every": Duration("time between probe rounds", "500ms", min=MIN_EVERY),
})
DURING = Obj({
    "every": Duration("time between probe rounds", "500ms", min=MIN_EVERY),
    "checks": CHECKS,
    "abort": List(Raw("a guardrail like `home < 50%`", {"type": "string"}),
                  "abort and revert everything at once when one of these holds"),
    "window": Duration("guardrails look at this much recent history", "3s", min=MIN_EVERY),
})
AFTER = Obj({
    "settle": Duration("wait after the last revert before measuring", "1s", min=0),
    "window": Duration("how long to sample", "3s", min=0),
    "every": Duration("time between probe rounds", "500ms", min=MIN_EVERY),
    "recover_within": Duration("checks must pass again within this after the last revert"),
})

FAULT = Obj({
    "name": Str("a name for reports", pattern=NAME),
    "type": Field(Str("fault type, see `chaos faults`"), required=True),
    "target": Field(Raw("what the fault hits", {"type": "object"}), required=True),
    "with": Raw("the fault's parameters, see `chaos faults`", {"type": "object"}),
    "start": Duration("offset from the start of the during phase", "0s", min=0),
    "duration": Duration("how long the fault is held"),
})

LIMITS = Obj({
    "max_duration": Duration("refuse a plan longer than this", "10m", min=1),
    "max_targets": Int("refuse to hit more targets than this per fault", 5, min=1),
})

KUBERNETES = Obj({
    "context": Str("kubeconfig context (default: the current one)", min_length=1),
    "kubeconfig": Str("kubeconfig file, relative to this file (default: $KUBECONFIG, "
                      "~/.kube/config, or the pod's service account)", min_length=1),
    "namespaces": List(Str(pattern=r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"),
                       "only these namespaces may be targeted (default: any but kube-system)"),
    "allow_kube_system": Bool("allow targets in kube-system (refused by default)", False),
    "image": Str("image of the ephemeral containers that run in-pod faults (needs tc for "
                 "network faults); default: see docs/kubernetes.md", min_length=1),
}, "how to reach the cluster, and which namespaces the experiment may touch")


SLO = Obj({
    "objective": Field(Percent("share of good events promised, e.g. 99.5%"), required=True),
    "period": Duration("the period the objective is promised over, e.g. 30d"),
}, "the service level objective that burn_rate(W) checks are relative to")

TRAFFIC_HTTP = Obj({
    "url": Field(Str("http:// or https:// URL", pattern=HTTP_URL), required=True),
    "rate": Rate("requests per second sent on schedule (open model), e.g. 500/s; required "
                 "unless traffic.profile sets the rate"),
    "ramp": Duration("rise linearly from 0 to `rate` over this", "0s", min=0),
    "timeout": Duration("from the intended send time; slower is an error", "2s", min=0.001),
    "method": Str("HTTP method", "GET", pattern=r"[A-Z]+"),
    "headers": Map(Str(), "request headers"),
    "body": Str("request body"),
    "connections": Int("most keep-alive connections opened (default: enough for every request "
                       "to wait its whole timeout, rate x timeout x 1.1 + 10, at most 10000); "
                       "waiting for one when all are busy makes a window INVALID", min=1,
                       max=10000),
    "verify_tls": Bool("verify TLS certificates", True),
    "max_lag": Duration("p99 scheduler lag above this makes a window INVALID", "25ms",
                        min=0.001),
}, "open-model HTTP/1.1 traffic; 5xx, timeouts and connection errors are errors")

STAGE = Obj({
    "rate": Rate("the stage's requests per second, e.g. 1000/s (required)"),
    "for": Field(Duration("how long the stage lasts", min=0.001), required=True),
    "ramp": Duration("reach `rate` from the previous stage's linearly over this (part of "
                     "`for`); 0s is a step", "0s", min=0),
}, "one stage of a ramping arrival rate")
SPIKE = Obj({
    "base": Field(Rate("requests per second before and after the spike"), required=True),
    "peak": Field(Rate("requests per second during the spike"), required=True),
    "at": Field(Duration("when the spike starts, after the traffic starts", min=0),
                required=True),
    "for": Field(Duration("how long the spike lasts", min=0.001), required=True),
    "ramp": Duration("rise to `peak` and fall back over this, within `for`", "0s", min=0),
}, "a sudden burst on top of a base rate")
BREAKING_POINT = Obj({
    "from": Field(Rate("the first step's requests per second"), required=True),
    "step": Field(Rate("added at each step"), required=True),
    "every": Field(Duration("how long each step lasts (judged whole)", min=0.5),
                   required=True),
    "max": Rate("the last rate tried (required): the search never sends more"),
    "until": List(Str("a stop condition like `latency.p99 > 500ms`"),
                  "stop at the first step where one of these holds (required)"),
    "under_fault": Bool("search again while the experiment's faults are held (from the first "
                        "injection) and report the capacity they cost", False),
}, "step the rate up until a stop condition holds for a whole step: the capacity")
PROFILE = OneOf({
    "stages": List(STAGE, "rates one after the other; the last one holds to the end",
                   min_items=1),
    "spike": SPIKE,
    "breaking_point": BREAKING_POINT,
}, "how the arrival rate changes over the run (instead of traffic.http.rate)")
MIX_REQUEST = Obj({
    "url": Field(Str("same scheme://host:port as traffic.http.url", pattern=HTTP_URL),
                 required=True),
    "method": Str("HTTP method", "GET", pattern=r"[A-Z]+"),
    "headers": Map(Str(), "request headers"),
    "body": Str("request body"),
})
MIX = List(Obj({
    "weight": Field(Int("share of the requests, relative to the others' weights", min=0,
                        max=1000), required=True),
    "http": Field(MIX_REQUEST, required=True),
}), "weighted requests sent instead of traffic.http's own, in a smooth round robin",
    min_items=1)

ADDRESS = r"[A-Za-z0-9_.:\[\]-]*:[0-9]{1,5}"
KUBERNETES_WORKERS = Obj({
    "replicas": Field(Int("worker pods: each sends an equal share of the schedule", min=1,
                          max=1000), required=True),
    "namespace": Field(Str("where the run creates the workers' Job and its token's Secret",
                           pattern=r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"), required=True),
    "image": Field(Str("an image with chaos installed (`chaos traffic-worker` on its PATH), "
                       "e.g. ghcr.io/chaos-runner/chaos:0.1.0", min_length=1), required=True),
    "listen": Field(Str("HOST:PORT the run listens on for the pods (0.0.0.0:PORT for every "
                        "interface)", pattern=ADDRESS), required=True),
    "advertise": Field(Str("HOST:PORT the pods connect to: the listener as the cluster sees it "
                           "(a routable address, a NodePort or a load balancer in front of "
                           "the runner)", pattern=ADDRESS), required=True),
    "service_account": Str("the pods' service account (they call no Kubernetes API; default: "
                           "the namespace's default)"),
}, "run the workers as a Kubernetes Job the run creates and deletes (the token is a Secret "
   "the run makes)")

WORKERS = Obj({
    "count": Str("generator processes: a number, or auto (one per core)", "1",
                 pattern=r"auto|[1-9][0-9]{0,2}"),
    "force": Bool("allow more workers than cores (they would share cores and lag)", False),
    "remote": Int("workers on other hosts, started there with `chaos traffic-worker --connect "
                  "HOST:PORT` (instead of count: this machine then sends nothing itself)",
                  min=1, max=1000),
    "listen": Str("HOST:PORT the run listens on for remote workers (required with remote; "
                  "nothing listens without it)", pattern=ADDRESS),
    "token": Str("the secret remote workers prove they know (required with remote): write "
                 "${CHAOS_WORKER_TOKEN}, never the value", min_length=16),
    "connect_within": Duration("the run fails (nothing injected) unless every remote worker "
                               "has joined within this", "60s", min=1),
    "max_clock_error": Duration("a remote worker whose clock offset is known less well than "
                                "this (half its best ping round trip) is refused", "5ms",
                                min=0.0001, max=1),
    "kubernetes": KUBERNETES_WORKERS,
}, "split the schedule across generator processes, past one core or past one machine; "
   "`workers: 4` is short for `{count: 4}`", shorthand=scalar_as("count"))

TRAFFIC = Obj({"http": Field(TRAFFIC_HTTP, required=True), "profile": PROFILE, "mix": MIX,
               "workers": WORKERS},
              "traffic the runner sends itself; availability/latency checks judge it")

PROMETHEUS = Obj({
    "url": Field(Str("Prometheus base URL", pattern=HTTP_URL), required=True),
    "good": Str("PromQL: good events over $window, e.g. "
                "sum(increase(http_requests_total{code!~\"5..\"}[$window]))"),
    "total": Str("PromQL: all events over $window"),
    "latency": Str("the histogram for latency checks: its metric name (without _bucket), "
                   "optionally with label matchers, e.g. "
                   "http_request_duration_seconds{job=\"api\"}"),
    "timeout": Duration("per query", "5s", min=0.001),
    "headers": Map(Str(), "request headers, e.g. Authorization: Bearer ${PROM_TOKEN}, or "
                          "X-Scope-OrgID for Mimir/Cortex"),
    "verify_tls": Bool("verify the server's TLS certificate (https)", True),
    "ca_file": Str("PEM file of the CA that signed the server's certificate, relative to the "
                   "experiment file (default: the system's trust store)", min_length=1),
}, "read good/total events and latency buckets from Prometheus at the end of each window")


class Matcher(Str):
    """An alert label matcher as Alertmanager writes them: `value` (equal), `!=value`,
    `=~regex` or `!~regex` (regexes anchored, as in PromQL); converts to (op, value)."""

    def convert(self, value: object) -> tuple[str, str]:  # type: ignore[override]
        import re

        text = super().convert(value)
        op, rest = next(((o, text[len(o):]) for o in ("=~", "!~", "!=", "=")
                         if text.startswith(o)), ("=", text))
        if op in ("=~", "!~"):
            try:
                re.compile(rest)
            except re.error as exc:
                raise ValueError(f"{rest!r} is not a regular expression ({exc}); write e.g. "
                                 "=~checkout|cart") from None
        return op, rest


ALERT_LABELS = Map(Matcher("`value`, `!=value`, `=~regex` or `!~regex`"),
                   "label matchers the alert must satisfy, e.g. {alertname: HighErrorRate, "
                   "service: checkout}", key_pattern=r"[A-Za-z_][A-Za-z0-9_]*")



def alert_source(doc: str) -> Obj:
    """Where alerts are read: the TLS and credential options of hypothesis.prometheus."""
    return Obj({
        "url": Field(Str("base URL", pattern=HTTP_URL), required=True),
        **{k: PROMETHEUS.fields[k] for k in ("timeout", "headers", "verify_tls", "ca_file")},
    }, doc)


EXPECTED_ALERT = Obj({
    "alert": Field(ALERT_LABELS, required=True),
    "within": Field(Duration("must be firing within this of the first injection (the time "
                             "to detect)", min=0), required=True),
    "resolves_within": Duration("must be resolved within this of the last revert", min=0),
}, "an alert the faults must fire")

FORBIDDEN_ALERT = Obj({
    "alert": Field(ALERT_LABELS, required=True),
}, "an alert that must not fire at all during the run")

DETECTION = Obj({
    "alertmanager": alert_source("Alertmanager (API v2, /api/v2/alerts; silenced and "
                                 "inhibited alerts are reported as such)"),
    "prometheus": alert_source("Prometheus (/api/v1/alerts; pending is not firing)"),
    "every": Duration("time between polls of the alerts", "2s", min=0.1),
    "expect": List(EXPECTED_ALERT, "alerts that must fire (and resolve)"),
    "forbid": List(FORBIDDEN_ALERT, "alerts that must not fire"),
}, "did monitoring notice? Alerts polled from the run's start: expected ones must fire within "
   "`within` of the first injection, forbidden ones never")


RUN_EVENTS = ("started", "breach", "aborted", "finished")


def webhooks(events: tuple[str, ...]) -> List:
    """`notify:` of experiments and game days: webhooks, JSON or shaped for Slack."""
    return List(Obj({
        "webhook": Field(Str("URL that receives a JSON POST", pattern=HTTP_URL),
                         required=True),
        "timeout": Duration("give up on one delivery after", "5s", min=0.1, max=60),
        "headers": Map(Str(), "extra request headers, e.g. Authorization: \"Bearer ${TOKEN}\""),
        "events": List(Str(choices=events), "which events to send (default: all)"),
        "format": Str("json: the documented payload; slack: an incoming webhook's text and "
                      "blocks", "json", choices=("json", "slack")),
    }))


def build_webhooks(raw: Any, events: tuple[str, ...]) -> tuple[Webhook, ...]:
    return tuple(Webhook(n["webhook"], n["timeout"] or 5.0, frozen(n["headers"] or {}),
                         tuple(n["events"] or events), n["format"] or "json")
                 for n in raw or ())


GRAFANA = Obj({
    "url": Field(Str("Grafana base URL", pattern=HTTP_URL), required=True),
    "token": Str("service account token, e.g. ${GRAFANA_TOKEN} (sent as a Bearer token; a "
                 "variable named *token* is masked in journals)"),
    "dashboard_uid": Str("annotate this dashboard only (default: an organization annotation, "
                         "shown by tag)", min_length=1),
    "panel_id": Int("and only this panel of it", min=1),
    "tags": List(Str(min_length=1), "extra tags on every annotation"),
    "timeout": Duration("per request", "5s", min=0.1, max=60),
}, "fault windows and verdicts as Grafana annotations (/api/annotations), beside the run")


def hypothesis_schema(vocab: Vocabulary) -> Obj:
    return Obj({
        "probes": List(vocab.probes, min_items=1),
        "slo": SLO,
        "traffic": TRAFFIC,
        "prometheus": PROMETHEUS,
        "checks": CHECKS,
        "min_events": Int("a window with fewer events is NO_DATA, never PASS "
                          "(default 3 probe samples, 20 requests)", min=1),
        "before": BEFORE,
        "during": DURING,
        "after": AFTER,
    }, "steady state: probes, traffic or Prometheus, and the checks over them")


def experiment_schema(vocab: Vocabulary) -> Obj:
    return Obj({
        "title": Field(Str("what this experiment proves", min_length=1), required=True),
        "description": Str(),
        "tags": List(Str()),
        "vars": Map(VarDefault("default value", {"type": ["string", "number", "boolean"]}),
                    "defaults for ${name} substitution; --var and the environment override",
                    key_pattern=VAR_NAME),
        "services": List(SERVICE),
        "hypothesis": hypothesis_schema(vocab),
        "faults": List(FAULT),
        "limits": LIMITS,
        "kubernetes": KUBERNETES,
        "detection": DETECTION,
        "notify": webhooks(RUN_EVENTS),
        "grafana": GRAFANA,
    })
