"""The built-in probe kinds' parameters: declared apart from the probes' runtime, so that
validating a file does not import asyncio and ssl. Each kind's default timeout is the default of
its `timeout` field here (chaos.slo.probe_kinds reads it from there)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaos.model.scalars import HTTP_URL
from chaos.model.schema import (
    Argv,
    Bool,
    Duration,
    Field,
    Int,
    List,
    Map,
    Obj,
    Regex,
    Schema,
    Str,
    scalar_as,
)

if TYPE_CHECKING:
    from chaos.slo.probe_kinds import ProbeKinds

HTTP = Obj({
    "url": Str("http:// or https:// URL", pattern=HTTP_URL),
    "method": Str("HTTP method", "GET", pattern=r"[A-Z]+"),
    "headers": Map(Str(), "request headers"),
    "body": Str("request body"),
    "status": List(Int(min=100, max=599), "acceptable status codes (default: any 2xx)"),
    "expect_body": Str("regular expression the response body must contain"),
    "timeout": Duration("the answer must arrive within this", "1s", min=0.001),
    "verify_tls": Bool("verify TLS certificates", True),
}, "an HTTP request", shorthand=scalar_as("url"))

TCP = Obj({
    "address": Str("host:port", pattern=r".+:\d{1,5}"),
    "timeout": Duration("connect within this", "1s", min=0.001),
}, "a TCP connect")

EXEC = Obj({
    "run": Argv(),
    "exit_code": Int("expected exit code", 0),
    "stdout": Str("regular expression stdout must contain"),
    "timeout": Duration("kill the command after this", "5s", min=0.001),
}, "a command (no shell)")

PROCESS = Obj({
    "name": Str("process name"),
    "cmdline": Regex("regular expression in the command line"),
    "pid": Int("process id", min=1),
    "pidfile": Str("file with the pid"),
}, "a process is alive")

NAMESPACE = Str("namespace (default: the kubeconfig context's)",
                pattern=r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

PODS = Obj({
    "namespace": NAMESPACE,
    "labels": Map(Str(), "labels the pods carry, e.g. {app: web}"),
    "fields": Str("field selector, e.g. spec.nodeName=worker-1", min_length=1),
    "min_ready": Int("ok when at least this many matching pods are Ready", 1, min=0),
    "timeout": Duration("the API must answer within this", "5s", min=0.001),
}, "enough Ready pods (Kubernetes; the experiment's `kubernetes:` section says which cluster)")

DEPLOYMENT = Obj({
    "namespace": NAMESPACE,
    "name": Field(Str("the workload's name", min_length=1), required=True),
    "kind": Str("deployment or statefulset", "deployment",
                choices=("deployment", "statefulset")),
    "min_available": Int("ok when at least this many replicas are available (default: the "
                         "desired count)", min=0),
    "timeout": Duration("the API must answer within this", "5s", min=0.001),
}, "enough available replicas of a Deployment or StatefulSet (Kubernetes)",
    shorthand=scalar_as("name"))


def probe_schema(kinds: ProbeKinds | None = None) -> Schema:
    """The probe section of experiment files, as the registry (default: built-ins and plugins)
    declares it."""
    from chaos.slo.probe_kinds import default_probe_kinds

    return (kinds or default_probe_kinds()).schema()
