"""`chaos inject TYPE ...`: one fault, now, in the foreground, with a countdown; Ctrl-C reverts.

Each fault type becomes a subcommand whose flags are named after its parameters (from the
catalogue), plus target flags and `--for`. The flags are turned into an experiment document and
loaded by the same loader as files, so the checks and messages are the same, and the run goes
through the same engine: ledger, watchdog, guards, locks.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import yaml

from chaos.cli import colour, machine
from chaos.cli.options import fault_catalogue, run_registries
from chaos.cli.options import state_dir as state_dir_option
from chaos.errors import ExitCode, ExperimentInvalid, Problem
from chaos.faults import FaultRegistry, FaultType
from chaos.faults.registry import TargetFlag
from chaos.model.schema import Bool, Int, Map


def _faults() -> FaultRegistry:
    """The fault catalogue this command reads, plugins' fault types included (a fresh one in
    tests: `obj={"faults": ...}`)."""
    return fault_catalogue()


def _target_flags() -> Mapping[str, TargetFlag]:
    """flag -> the selector field it sets: declared on the target kinds' schemas (`flag=`),
    so a new target kind brings its flags with it."""
    return _faults().target_flags


# one flag name per YAML field, as in `chaos proxy` and the file; the old names, hidden, for a
# release: old flag -> the target flag it sets
DIRECTION_FLAGS = ("stream", "traffic")
OLD_NAMES = {"peer": "host", "stream": "stream", "traffic": "traffic"}


def _target_flag(name: str) -> str:
    """The flag a person types for a target flag."""
    return "--direction" if name in DIRECTION_FLAGS else _flag(name)


def _direction(fault: FaultType, kw: dict[str, Any]) -> None:
    """`--direction` is the proxy's byte stream (downstream/upstream) or the kernel's packets
    (ingress/egress): which one follows from the other target flags, else from the value."""
    for old, entry in OLD_NAMES.items():  # hidden aliases
        value = kw.pop(f"old_{old}", None)
        if value is not None and kw.get(f"target_{entry}") is None:
            kw[f"target_{entry}"] = value
    value = kw.pop("target_direction", None)
    if value is None:
        return
    given = {t.kind for f, t in _target_flags().items()
             if f not in DIRECTION_FLAGS and kw.get(f"target_{f}") is not None}
    if "proxy" in given or ("proxy" in fault.target_kinds and not given and
                            value in ("downstream", "upstream")):
        kw["target_stream"] = value
    else:
        kw["target_traffic"] = value

# Kubernetes flags, kubectl-like: the kind follows from --node / --deployment / --statefulset,
# else pods. With pod flags, the kernel flags (--device, --peer, --port...) filter the traffic
# that in-pod network faults hit. (flag, option names, help)
KUBERNETES_KINDS = ("pods", "deployment", "statefulset", "node")
KUBERNETES_FLAGS = (
    ("k8s_namespace", ["-n", "--namespace"], "kubernetes: namespace (default: the context's)"),
    ("k8s_selector", ["-l", "--selector"], "kubernetes: labels, e.g. app=web,tier=frontend"),
    ("k8s_fields", ["--field-selector"], "kubernetes: pods' field selector"),
    ("k8s_pod", ["--pod"], "kubernetes: pod name (repeatable)"),
    ("k8s_on_node", ["--on-node"], "kubernetes: only pods on this node"),
    ("k8s_deployment", ["--deployment"], "kubernetes: a Deployment by name"),
    ("k8s_statefulset", ["--statefulset"], "kubernetes: a StatefulSet by name"),
    ("k8s_node", ["--node"], "kubernetes: a node by name"),
    ("k8s_context", ["--context"], "kubernetes: kubeconfig context (default: current)"),
    ("k8s_kubeconfig", ["--kubeconfig"], "kubernetes: kubeconfig file"),
)


# Container flags (Docker, Podman): the kind is `container`. With them, the kernel flags
# (--device, --peer, --port...) filter the traffic network faults hit inside each container.
CONTAINER_FLAGS = (
    ("ct_name", ["--container"], "container: a container by name"),
    ("ct_compose", ["--compose"], "container: a Compose service, PROJECT/SERVICE (or PROJECT)"),
    ("ct_label", ["--label"], "container: containers with this label, k=v or k"),
    ("ct_image", ["--image"], "container: containers running this image"),
)


def _container_target(fault: FaultType, kw: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """("container", selector) from the container flags, or None when none was given."""
    if "container" not in fault.target_kinds:
        return None
    selector: dict[str, Any] = {"name": kw.get("ct_name"), "label": kw.get("ct_label"),
                                "image": kw.get("ct_image")}
    if kw.get("ct_compose"):
        project, _, service = str(kw["ct_compose"]).partition("/")
        if not project or "/" in service:
            raise click.UsageError(f"--compose takes PROJECT/SERVICE or PROJECT, got "
                                   f"{kw['ct_compose']!r}")
        selector["compose"] = {k: v for k, v in (("project", project), ("service", service))
                               if v}
    selector = {k: v for k, v in selector.items() if v}
    return ("container", selector) if selector else None


def _param_flag(fault: FaultType, name: str) -> str:
    """A parameter's flag; container.kill's `container` (a container inside a pod) becomes
    --pod-container, since --container selects a Docker/Podman container."""
    if name == "container" and "container" in fault.target_kinds:
        return "--pod-container"
    return _flag(name)


def _kubernetes_dests(kinds: tuple[str, ...] | list[str]) -> set[str]:
    """The Kubernetes flags (by dest) that make sense for these target kinds."""
    if not any(k in KUBERNETES_KINDS for k in kinds):
        return set()
    wanted = {"k8s_namespace", "k8s_selector", "k8s_context", "k8s_kubeconfig"}
    wanted |= {"k8s_fields", "k8s_pod", "k8s_on_node"} if "pods" in kinds else set()
    return wanted | {f"k8s_{k}" for k in ("deployment", "statefulset", "node") if k in kinds}


def _kubernetes_options(kinds: list[str]) -> list[click.Parameter]:
    wanted = _kubernetes_dests(kinds)
    params: list[click.Parameter] = [
        click.Option([*names, dest], help=doc, multiple=dest == "k8s_pod")
        for dest, names, doc in KUBERNETES_FLAGS if dest in wanted]
    params.append(click.Option(["--allow-kube-system", "k8s_allow_kube_system"], is_flag=True,
                               help="kubernetes: allow targets in kube-system"))
    return params


def _kubernetes_target(fault: FaultType, kw: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(kind, selector) from the Kubernetes flags, or None when none was given."""
    def labels(text: str | None) -> dict[str, str] | None:
        if not text:
            return None
        pairs = [p.partition("=") for p in text.split(",") if p.strip()]
        if any(not sep or not key.strip() for key, sep, _ in pairs):
            raise click.UsageError(f"--selector takes key=value pairs joined by commas, got "
                                   f"{text!r}")
        return {key.strip(): value.strip() for key, _, value in pairs}

    named = [kind for kind in ("node", "deployment", "statefulset") if kw.get(f"k8s_{kind}")]
    if len(named) > 1:
        raise click.UsageError(f"give one of {', '.join('--' + k for k in named)}: a fault "
                               "hits one kind of object")
    # no name: -l alone selects by labels when the fault hits one kind, and it isn't pods
    others = [k for k in fault.target_kinds if k in ("node", "deployment", "statefulset")]
    if not named and kw.get("k8s_selector") and "pods" not in fault.target_kinds:
        if len(others) > 1:
            raise click.UsageError(f"-l alone cannot tell a {' from a '.join(others)} apart: "
                                   f"name one with {' or '.join('--' + k for k in others)}")
        named = others
    for kind in named:
        selector: dict[str, Any] = {"name": kw.get(f"k8s_{kind}"),
                                    "labels": labels(kw.get("k8s_selector"))}
        if kind != "node":
            selector["namespace"] = kw.get("k8s_namespace")
        return kind, {k: v for k, v in selector.items() if v}
    pods = {"namespace": kw.get("k8s_namespace"), "labels": labels(kw.get("k8s_selector")),
            "fields": kw.get("k8s_fields"), "names": list(kw.get("k8s_pod") or ()) or None,
            "node": kw.get("k8s_on_node")}
    pods = {k: v for k, v in pods.items() if v}
    return ("pods", pods) if pods and "pods" in fault.target_kinds else None


def _target_kind(flags: set[str]) -> str:
    """The target kind the given target flags select; --netns moves kernel flags into it."""
    kinds = {_target_flags()[f].kind for f in flags}
    if "netns" in kinds:
        kinds.discard("interface")
    if len(kinds) > 1:
        raise click.UsageError("target flags of different kinds were mixed: "
                               + ", ".join(sorted({_target_flag(f) for f in flags})))
    return kinds.pop() if kinds else "process"


def _in_pods(cluster: tuple[str, dict[str, Any]],
             kw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Kernel traffic flags given with pod flags filter traffic inside each pod."""
    flags = _target_flags()
    given = [f for f in flags if kw.get(f"target_{f}") is not None]
    local = [_target_flag(f) for f in given if flags[f].kind != "interface"]
    if cluster[0] not in ("pods", "container") or local:
        where = "in a container" if cluster[0] == "container" else "in the cluster"
        raise click.UsageError(
            f"{', '.join(local or [_target_flag(f) for f in given])} name a target on this "
            f"machine, and the other flags a {cluster[0]} target {where}; give one or the other "
            "(with pod or container flags, only --device, --host, --cidr, --port, --protocol "
            "and --direction apply, inside each pod or container)")
    kind, selector = cluster
    return kind, {**selector, **{flags[f].field: kw[f"target_{f}"] for f in given}}


def _share_flag(fault: FaultType, name: str) -> str:
    """--count / --percent pick targets, unless the fault has a parameter of that name
    (network.loss --percent is the packets' share): then --targets-count / --targets-percent."""
    clash = {"count", "percent"} & set(fault.params.fields)
    return f"--targets-{name}" if clash else f"--{name}"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _command(fault: FaultType) -> click.Command:
    params: list[click.Parameter] = []
    for name, field in fault.params.fields.items():
        schema = field.schema
        default = f" [default: {schema.default}]" if schema.default is not None else ""
        if isinstance(schema, Bool):
            params.append(click.Option([f"{_flag(name)}/--no-{name.replace('_', '-')}"],
                                       default=None, help=schema.doc))
        else:
            params.append(click.Option([_param_flag(fault, name), name], metavar=schema.describe().upper()
                                       .split(" ")[0], help=f"{schema.doc}{default}",
                                       type=int if isinstance(schema, Int) else None))
    kinds = [k for k in fault.target_kinds if k != "service"]
    directions = []
    # http.* on pods (the proxy's faults, no kernel target): --port is the application's port
    app_port = "pods" in kinds and "proxy" in kinds and "interface" not in kinds
    for flag, target in _target_flags().items():
        if target.kind in kinds and flag in DIRECTION_FLAGS:
            directions.append(target.help)
        elif target.kind in kinds or (app_port and flag == "port"):
            params.append(click.Option([_flag(flag), f"target_{flag}"], type=target.type, help=(
                "kubernetes: the application's port in each pod, redirected to the fault proxy"
                if target.kind not in kinds else target.help)))
    if directions:
        params.append(click.Option(["--direction", "target_direction"], help="; ".join(directions)))
    for old, entry in OLD_NAMES.items():
        if _target_flags()[entry].kind in kinds:
            params.append(click.Option([_flag(old), f"old_{old}"], hidden=True))
    if any(k in KUBERNETES_KINDS for k in kinds):
        params += _kubernetes_options(kinds)
    if "container" in kinds:
        params += [click.Option([*names, dest], help=doc) for dest, names, doc in CONTAINER_FLAGS]
    if "process" in kinds or "container" in kinds or any(k in KUBERNETES_KINDS for k in kinds):
        params += [click.Option([_share_flag(fault, "count"), "target_count"], type=int,
                                help="hit at most N of the matches"),
                   click.Option([_share_flag(fault, "percent"), "target_percent"],
                                help="hit this share of the matches, e.g. 50%")]
    if not fault.instant:
        params.append(click.Option(["--for", "duration"], required=True, metavar="DURATION",
                                   help="how long to hold the fault, e.g. 30s"))
        params.append(click.Option(["--detach"], is_flag=True,
                                   help="hold the fault in the background: print its id and "
                                        "return at once (`chaos stop ID` ends it)"))
    params.append(click.Option(["--run-id"], hidden=True,  # chaos.cli.detach names its log
                               help="the run id (the detached holder's is chosen for it)"))
    params.append(click.Option(["--max-targets"], type=int, default=5, show_default=True,
                               help="refuse a selector that matches more targets"))
    params.append(click.Option(["--dry-run"], is_flag=True, help="show the targets, inject nothing"))
    params.append(click.Option(["--metrics", "metrics_listen"], metavar="HOST:PORT",
                               help="serve the runner's Prometheus metrics on /metrics there"))
    params.append(click.Option(["--traces"], is_flag=True,
                               help="export OpenTelemetry traces (OTEL_EXPORTER_OTLP_*)"))
    params.append(state_dir_option(click.Command("x")).params[0])

    @machine.json_output(machine.inject_document)
    def callback(**kwargs: Any) -> None:
        _direction(fault, kwargs)
        _inject(fault, kwargs)

    params += callback.__click_params__  # type: ignore[attr-defined]  # --json
    return FaultCommand(fault.name, params=params, callback=callback,
                        help=f"{fault.summary}.", short_help=fault.summary)


class FaultCommand(click.Command):
    """A flag named as another tool names the parameter (`--latency`, `--cpu-percent`) is
    answered with ours (chaos.model.borrowed), not only click's spelling guess."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            from chaos.model.borrowed import borrowed

            fields = [p.name for p in self.params if p.name]
            word = exc.option_name.lstrip("-")
            hint = borrowed(word, fields) or borrowed(word.replace("-", "_"), fields)
            if not hint:
                raise
            ours = hint.split("did you mean ", 1)[1].split("?", 1)[0]
            raise click.UsageError(f"no such option {exc.option_name}; did you mean "
                                   f"{_flag(ours)}?{hint.split('?', 1)[1]}", ctx) from None


class InjectGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [f.name for f in _faults() if any(k != "service" for k in f.target_kinds)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        fault = _faults().get(name)
        if fault is None or name not in self.list_commands(ctx):
            return None
        return _command(fault)

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        """An unknown fault type says which one was meant (`proces.suspend`), exit 2."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            from chaos.model.walk import suggest

            known = self.list_commands(ctx)
            # `suspend`, `cpu`: the family left out; else a typo in the whole name
            tails = {k.rpartition(".")[2]: k for k in known}
            hint = (f"; did you mean {tails[name]}?" if name in tails else
                    suggest(name, known) or suggest(name.rpartition(".")[2], list(tails)))
            if hint and name not in tails and not suggest(name, known):
                hint = f"; did you mean {tails[hint[len('; did you mean '):-1]]}?"
            raise click.UsageError(f"no fault type {name!r}{hint or ''}"
                                   f" (`chaos faults` lists them)", ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=InjectGroup)
def inject() -> None:
    """Inject one fault now and hold it in the foreground; Ctrl-C reverts at once.

    \b
    Example:  chaos inject process.suspend --process nginx --count 1 --for 30s
              chaos inject container.pause --container checkout-db --for 30s
    Then, from another terminal:  chaos status / chaos stop ID
    """


def _document(fault: FaultType, kw: dict[str, Any]) -> dict[str, Any]:
    flags = _target_flags()
    selector = {t.field: kw[f"target_{flag}"] for flag, t in flags.items()
                if kw.get(f"target_{flag}") is not None}
    cluster = _kubernetes_target(fault, kw)
    ours = _container_target(fault, kw)
    if cluster and ours:
        raise click.UsageError("the container flags and the Kubernetes flags name different "
                               "targets; give one or the other")
    cluster = cluster or ours
    if cluster and selector:
        selector, cluster = {}, _in_pods(cluster, kw)
    host = not selector and not cluster and "host" in fault.target_kinds  # this machine
    if not selector and not host and not cluster and any(
            k != "service" for k in fault.target_kinds):
        wanted = list(dict.fromkeys(_target_flag(f) for f, t in flags.items()
                                    if t.kind in fault.target_kinds))
        wanted += [n[-1] for d, n, _ in KUBERNETES_FLAGS if d in _kubernetes_dests(
            fault.target_kinds) and d not in ("k8s_context", "k8s_kubeconfig")]
        if "container" in fault.target_kinds:
            wanted += [names[-1] for _, names, _ in CONTAINER_FLAGS]
        raise click.UsageError("say what to hit: " + ", ".join(wanted))
    kind = _target_kind({f for f in flags if kw.get(f"target_{f}") is not None})
    target: dict[str, Any] = {"host": "local"} if host else (
        {cluster[0]: cluster[1]} if cluster else {kind: selector})
    for share in ("count", "percent"):
        if kw.get(f"target_{share}") is not None:
            target[share] = kw[f"target_{share}"]
    params = {name: _flag_value(fault, name, kw[name]) for name in fault.params.fields
              if kw.get(name) is not None}
    doc_fault: dict[str, Any] = {"name": fault.name, "type": fault.name, "target": target,
                                 "with": params}
    if kw.get("duration") is not None:
        doc_fault["duration"] = kw["duration"]
    doc = {"title": f"chaos inject {fault.name}", "faults": [doc_fault],
           "limits": {"max_targets": kw["max_targets"], "max_duration": "24h"}}
    settings = {key: kw.get(f"k8s_{key}") for key in ("context", "kubeconfig",
                                                       "allow_kube_system")}
    if cluster and any(settings.values()):
        doc["kubernetes"] = {k: v for k, v in settings.items() if v}
    return doc


def _flag_value(fault: FaultType, name: str, value: Any) -> Any:
    """A mapping parameter is given as a YAML flow mapping: --set-headers '{retry-after: 5}'."""
    if isinstance(fault.params.fields[name].schema, Map) and isinstance(value, str):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value  # the loader says what was expected
    return value


# the Kubernetes selector fields -> the flag that sets them (see _kubernetes_target)
KUBERNETES_FIELDS = {"namespace": "--namespace", "labels": "--selector", "name": "",
                     "fields": "--field-selector", "names": "--pod", "node": "--on-node"}


def _flags_by_path(fault: FaultType) -> dict[str, str]:
    """Each document path `_document` can write -> the flag, as typed, that wrote it."""
    paths = {f"faults[0].with.{name}": _param_flag(fault, name) for name in fault.params.fields}
    paths["faults[0].duration"] = "--for"
    for share in ("count", "percent"):
        paths[f"faults[0].target.{share}"] = _share_flag(fault, share)
    for flag, target in _target_flags().items():
        paths[f"faults[0].target.{target.kind}.{target.field}"] = _target_flag(flag)
        if target.kind == "interface":  # the same flags inside pods and containers
            paths[f"faults[0].target.pods.{target.field}"] = _target_flag(flag)
            paths[f"faults[0].target.container.{target.field}"] = _target_flag(flag)
    for field, flag in (("name", "--container"), ("label", "--label"), ("image", "--image"),
                        ("compose", "--compose")):
        paths[f"faults[0].target.container.{field}"] = flag
    for kind in KUBERNETES_KINDS:
        for field, flag in KUBERNETES_FIELDS.items():
            paths.setdefault(f"faults[0].target.{kind}.{field}", flag or f"--{kind}")
    for key in ("context", "kubeconfig", "allow_kube_system"):
        paths[f"kubernetes.{key}"] = _flag(key)
    return paths


def _as_flags(fault: FaultType, problem: Problem) -> str:
    """The problem, named by the flag the user typed (`--grace-period`, not a field path)."""
    path = problem.path
    known = _flags_by_path(fault)
    prefix = max((p for p in known if path == p or path.startswith((p + ".", p + "["))),
                 key=len, default=None)
    if prefix is not None:
        path = known[prefix] + path[len(prefix):]
    else:
        path = path.replace("faults[0].target.", "--")
    return f"{path}: {problem.message}" if path else problem.message


def _inject(fault: FaultType, kw: dict[str, Any]) -> None:
    from chaos.model.loader import load_text
    from chaos.model.source import SourceText
    from chaos.runner.load import vocabulary

    text = yaml.safe_dump(_document(fault, kw), sort_keys=False)
    try:
        experiment = load_text(SourceText("<command line>", text),
                               vocabulary(_faults(), run_registries()["probes"]), {})
    except ExperimentInvalid as exc:
        machine.record_invalid(exc)
        for problem in exc.problems:
            click.echo(f"chaos inject {fault.name}: {_as_flags(fault, problem)}", err=True)
        sys.exit(ExitCode.INVALID)
    if kw.get("dry_run"):
        from chaos.cli.run import print_plan

        sys.exit(asyncio.run(print_plan([experiment])))
    if kw.get("detach"):  # checked above like any inject; the holder runs it for real
        from chaos.cli.detach import detach

        sys.exit(detach(kw.get("state_dir"), sys.argv[1:]))
    sys.exit(asyncio.run(_hold(experiment, kw.get("state_dir"), kw.get("metrics_listen"),
                               bool(kw.get("traces")), kw.get("run_id"))))


async def _hold(experiment: Any, state_dir: Path | None, metrics_listen: str | None = None,
                traces: bool = False, run_id: str | None = None) -> int:
    from chaos.cli.run import telemetry
    from chaos.cli.view import LiveView
    from chaos.reports.terminal import summary
    from chaos.runner.lifecycle import Lifecycle, handling_signals
    from chaos.runner.session import RunOptions, run_experiment

    options = RunOptions(runs_dir=Path(state_dir or _default_runs()) / "adhoc",
                         state_dir=state_dir, run_id=run_id)
    def print_id(event: Any) -> None:  # on stdout at once: what `chaos stop` takes
        if event.name == "fault.injected":
            click.echo(f"injection {event.data['injection']}  "
                       f"(`chaos stop {event.data['injection']}` ends it)")

    lifecycle = Lifecycle()  # Ctrl-C / SIGTERM revert at once
    async with telemetry(metrics_listen, traces, state_dir) as subscribers:
        with handling_signals(lifecycle):
            record = await run_experiment(experiment, options,
                                          [LiveView(countdown=True), print_id, *subscribers],
                                          lifecycle=lifecycle, **run_registries())
    machine.record(record.journal, record.journal_path)
    click.echo(colour.summary(summary(record.journal, str(record.journal_path))))
    if record.result.error is not None and record.result.error.hint:
        click.echo(f"  what to do: {record.result.error.hint}")
    return int(record.result.exit_code)


def _default_runs() -> Path:
    from chaos.paths import default_state_dir

    return default_state_dir()
