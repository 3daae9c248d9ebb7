"""`chaos inject TYPE ...`: one fault, now, in the foreground, with a countdown; Ctrl-C reverts.

Each fault type becomes a subcommand whose flags are named after its parameters (from the
catalogue), plus target flags and `--for`. The flags are turned into an experiment document and
loaded by the same loader as files, so the checks and messages are the same, and the run goes
through the same engine: ledger, watchdog, guards, locks.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from chaos.cli.options import state_dir as state_dir_option
from chaos.errors import ExitCode, ExperimentInvalid, Problem
from chaos.faults import FaultType, default_registry
from chaos.model.schema import Bool, Int

# target flag -> (target kind, selector field)
TARGET_FLAGS = {
    "process": ("process", "name", str, "process name (as in ps) or executable basename"),
    "pid": ("process", "pid", int, "process id"),
    "cmdline": ("process", "cmdline", str, "regular expression searched in the command line"),
    "pidfile": ("process", "pidfile", str, "file holding the process id"),
    "user": ("process", "user", str, "only processes of this user"),
    "listen": ("proxy", "listen", str, "fault proxy: address it listens on, HOST:PORT"),
    "upstream": ("proxy", "upstream", str, "fault proxy: address it relays to, HOST:PORT"),
    "stream": ("proxy", "direction", str, "fault proxy: downstream, upstream or both"),
    "toxicity": ("proxy", "toxicity", str, "fault proxy: share of connections hit, e.g. 50%"),
    "device": ("interface", "device", str, "kernel: network device (with --netns: inside it)"),
    "netns": ("netns", "name", str, "kernel: network namespace holding --device"),
    "peer": ("interface", "host", str, "kernel: only traffic to/from this IP address"),
    "cidr": ("interface", "cidr", str, "kernel: only traffic to/from this network"),
    "port": ("interface", "port", int, "kernel: only traffic to/from this port"),
    "protocol": ("interface", "protocol", str, "kernel: tcp, udp, icmp or all"),
    "traffic": ("interface", "direction", str, "kernel: ingress (arriving), egress or both"),
}


def _target_kind(flags: set[str]) -> str:
    """The target kind the given target flags select; --netns moves kernel flags into it."""
    kinds = {TARGET_FLAGS[f][0] for f in flags}
    if "netns" in kinds:
        kinds.discard("interface")
    if len(kinds) > 1:
        raise click.UsageError("target flags of different kinds were mixed: "
                               + ", ".join(sorted(_flag(f) for f in flags)))
    return kinds.pop() if kinds else "process"


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
            params.append(click.Option([_flag(name), name], metavar=schema.describe().upper()
                                       .split(" ")[0], help=f"{schema.doc}{default}",
                                       type=int if isinstance(schema, Int) else None))
    kinds = [k for k in fault.target_kinds if k != "service"]
    for flag, (kind, _, kind_type, doc) in TARGET_FLAGS.items():
        if kind in kinds:
            params.append(click.Option([_flag(flag), f"target_{flag}"], type=kind_type, help=doc))
    if "process" in kinds:
        params.append(click.Option(["--count"], type=int, help="hit at most N of the matches"))
        params.append(click.Option(["--percent"], help="hit this share of the matches, e.g. 50%"))
    if not fault.instant:
        params.append(click.Option(["--for", "duration"], required=True, metavar="DURATION",
                                   help="how long to hold the fault, e.g. 30s"))
    params.append(click.Option(["--max-targets"], type=int, default=5, show_default=True,
                               help="refuse a selector that matches more targets"))
    params.append(click.Option(["--dry-run"], is_flag=True, help="show the targets, inject nothing"))
    params.append(state_dir_option(click.Command("x")).params[0])

    def callback(**kwargs: Any) -> None:
        _inject(fault, kwargs)

    return click.Command(fault.name, params=params, callback=callback,
                         help=f"{fault.summary}.", short_help=fault.summary)


class InjectGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [f.name for f in default_registry() if any(k != "service" for k in f.target_kinds)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        fault = default_registry().get(name)
        if fault is None or name not in self.list_commands(ctx):
            return None
        return _command(fault)


@click.group(cls=InjectGroup)
def inject() -> None:
    """Inject one fault now and hold it in the foreground; Ctrl-C reverts at once.

    \b
    Example:  chaos inject process.suspend --process nginx --count 1 --for 30s
    Then, from another terminal:  chaos status / chaos stop ID
    """


def _document(fault: FaultType, kw: dict[str, Any]) -> dict[str, Any]:
    selector = {field: kw[f"target_{flag}"] for flag, (_, field, _, _) in TARGET_FLAGS.items()
                if kw.get(f"target_{flag}") is not None}
    host = not selector and "host" in fault.target_kinds  # resource faults: this machine
    if not selector and not host and any(k != "service" for k in fault.target_kinds):
        raise click.UsageError("say what to hit: " + ", ".join(_flag(f) for f in TARGET_FLAGS))
    kind = _target_kind({f for f in TARGET_FLAGS if kw.get(f"target_{f}") is not None})
    target: dict[str, Any] = {"host": "local"} if host else {kind: selector}
    if kw.get("count") is not None:
        target["count"] = kw["count"]
    if kw.get("percent") is not None:
        target["percent"] = kw["percent"]
    params = {name: kw[name] for name in fault.params.fields if kw.get(name) is not None}
    doc_fault: dict[str, Any] = {"name": fault.name, "type": fault.name, "target": target,
                                 "with": params}
    if kw.get("duration") is not None:
        doc_fault["duration"] = kw["duration"]
    return {"title": f"chaos inject {fault.name}", "faults": [doc_fault],
            "limits": {"max_targets": kw["max_targets"], "max_duration": "24h"}}


def _as_flags(problem: Problem) -> str:
    path = problem.path.replace("faults[0].with.", "--").replace("faults[0].duration", "--for")
    path = path.replace("faults[0].target.process.", "--").replace("faults[0].target.", "--")
    for flag, (kind, field, _, _) in TARGET_FLAGS.items():  # proxy, interface, netns fields
        path = path.replace(f"--{kind}.{field}", _flag(flag))
    return f"{path}: {problem.message}" if path else problem.message


def _inject(fault: FaultType, kw: dict[str, Any]) -> None:
    from chaos.model.source import SourceText
    from chaos.model.loader import load_text
    from chaos.runner.load import vocabulary

    text = yaml.safe_dump(_document(fault, kw), sort_keys=False)
    try:
        experiment = load_text(SourceText("<command line>", text), vocabulary(), {})
    except ExperimentInvalid as exc:
        for problem in exc.problems:
            click.echo(f"chaos inject {fault.name}: {_as_flags(problem)}", err=True)
        sys.exit(ExitCode.INVALID)
    if kw.get("dry_run"):
        from chaos.cli.run import print_plan

        sys.exit(asyncio.run(print_plan([experiment])))
    sys.exit(asyncio.run(_hold(experiment, kw.get("state_dir"))))


async def _hold(experiment: Any, state_dir: Path | None) -> int:
    from chaos.cli.view import LiveView
    from chaos.reports.terminal import summary
    from chaos.runner.session import RunOptions, run_experiment

    options = RunOptions(runs_dir=Path(state_dir or _default_runs()) / "adhoc",
                         state_dir=state_dir)
    record = await run_experiment(experiment, options, [LiveView(countdown=True)])
    click.echo(summary(record.journal, str(record.journal_path)))
    if record.result.error is not None and record.result.error.hint:
        click.echo(f"  what to do: {record.result.error.hint}")
    return int(record.result.exit_code)


def _default_runs() -> Path:
    from chaos.paths import default_state_dir

    return default_state_dir()
