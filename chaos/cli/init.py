"""`chaos init`: start a new experiment (or game day) from a few answers instead of a copy.

The file is written with comments that say what each section does and what to change, its
fault parameters drawn from the catalogue (required ones filled, optional ones shown commented
out with their defaults). It goes through the same loader as `chaos validate` before it is
written: a file `chaos init` writes always validates, and wrong answers are refused with the
loader's own located messages (exit 2), leaving nothing behind. On a terminal, missing answers
are asked for; elsewhere (CI, scripts) they are flags, and a missing one is a usage error.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from chaos.errors import ExitCode, ExperimentInvalid

# target flag -> (target kind, the fault a first experiment on it usually tries)
TARGETS = {"process": ("process", "process.suspend"),
           "container": ("container", "container.pause"),
           "pods": ("pods", "pod.delete")}


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--url", help="The service's URL: the hypothesis sends it traffic and judges the "
                            "answers.")
@click.option("--process", "process_name", metavar="NAME", help="Target: a local process "
                                                               "(name as in ps).")
@click.option("--container", metavar="NAME", help="Target: a container by name.")
@click.option("--pods", metavar="SELECTOR", help="Target: Kubernetes pods by labels, "
                                                 "e.g. app=web,tier=frontend.")
@click.option("-n", "--namespace", help="With --pods: their namespace (default: the context's).")
@click.option("--fault", "fault_type", metavar="TYPE",
              help="Fault type (`chaos faults`); default: process.suspend, container.pause or "
                   "pod.delete, after the target.")
@click.option("--with", "params", multiple=True, metavar="NAME=VALUE",
              help="A fault parameter (repeatable), e.g. --with delay=200ms.")
@click.option("--availability", default="99%", show_default=True,
              help="SLO: the share of requests that must succeed.")
@click.option("--p95", default="500ms", show_default=True,
              help="SLO: the 95th percentile latency must stay below this.")
@click.option("--rate", default="20/s", show_default=True, help="Traffic the hypothesis sends.")
@click.option("--for", "duration", default="30s", show_default=True,
              help="How long the fault is held.")
@click.option("--title", help="One line saying what should hold (default: from the answers).")
@click.option("--gameday", is_flag=True,
              help="Write a game-day file listing --experiment files instead.")
@click.option("--experiment", "experiments", multiple=True, type=click.Path(dir_okay=False),
              help="With --gameday: an experiment file it runs (repeatable, in order).")
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
def init(path: Path, url: str | None, process_name: str | None, container: str | None,
         pods: str | None, namespace: str | None, fault_type: str | None,
         params: tuple[str, ...], availability: str, p95: str, rate: str, duration: str,
         title: str | None, gameday: bool, experiments: tuple[str, ...], force: bool) -> None:
    """Write a new, commented experiment file at PATH, validated before it is written.

    \b
    chaos init experiments/web-freeze.yaml --url http://127.0.0.1:8080/ --process web
    chaos init experiments/api-latency.yaml --url http://api/ --pods app=api \\
        --fault network.latency --with delay=200ms
    chaos init --gameday gamedays/weekly.yaml --experiment experiments/web-freeze.yaml

    On a terminal, what the flags do not say is asked for. Exit 0 when written, 2 when the
    answers do not make a valid file (nothing is written then).
    """
    if path.exists() and not force:
        raise click.UsageError(f"{path} exists; pass --force to overwrite it")
    interactive = sys.stdin.isatty()
    if gameday:
        text = _gameday(path, title, list(experiments), interactive)
    else:
        if experiments:
            raise click.UsageError("--experiment goes with --gameday")
        answers = _answers(url, {"process": process_name, "container": container, "pods": pods},
                           fault_type, interactive)
        text = experiment_text(answers[0], answers[1], answers[2], answers[3],
                               _params(params), availability=availability, p95=p95, rate=rate,
                               duration=duration, title=title, namespace=namespace)
    _write_validated(path, text, gameday)
    kind = "game day" if gameday else "experiment"
    click.echo(f"wrote {path}: a valid {kind}")
    click.echo(f"  next: read it, then `chaos {'gameday run' if gameday else 'run'} {path}`"
               + ("" if gameday else f" (`chaos run --dry-run {path}` shows what it would hit)"))


def _answers(url: str | None, targets: dict[str, str | None], fault_type: str | None,
             interactive: bool) -> tuple[str, str, str, str]:
    """(url, target kind, target value, fault type): from the flags, else asked on a TTY."""
    given = [(flag, value) for flag, value in targets.items() if value]
    if len(given) > 1:
        raise click.UsageError("give one target: " + ", ".join(f"--{f}" for f, _ in given))
    if not interactive and (not url or not given):
        missing = (["--url"] if not url else []) + (
            ["one of --process, --container, --pods"] if not given else [])
        raise click.UsageError(f"chaos init needs {' and '.join(missing)} (asked for on a "
                               "terminal; not here, as stdin is not one)")
    if not url:
        url = click.prompt("URL of the service (the hypothesis sends it traffic)")
    if given:
        flag, value = given[0]
    else:
        flag = click.prompt("What does the fault hit", type=click.Choice(list(TARGETS)),
                            default="process")
        value = click.prompt({"process": "Process name (as in ps)",
                              "container": "Container name",
                              "pods": "Pod labels (e.g. app=web)"}[flag])
    if not fault_type:
        default = TARGETS[flag][1]
        fault_type = click.prompt("Fault type (`chaos faults` lists them)",
                                  default=default) if interactive else default
    return str(url), flag, str(value), str(fault_type)


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--with")
        params[name] = value
    return params


def experiment_text(url: str, flag: str, value: str, fault_type: str, params: dict[str, str],
                    *, availability: str, p95: str, rate: str, duration: str,
                    title: str | None, namespace: str | None = None) -> str:
    """The commented YAML of a first experiment; validation is the loader's job."""
    from chaos.faults import default_registry

    fault = default_registry().get(fault_type)
    instant = fault.instant if fault else False
    target = _target(flag, value, namespace)
    title = title or f"{url} keeps its SLO while {fault_type} hits {flag} {value}"
    lines = [
        f"# Written by `chaos init`. Read it through, then: chaos run {'THIS_FILE'}",
        "# Format: docs/experiment-format.md; faults: `chaos faults`; editors: `chaos schema`.",
        f"title: {_q(title)}",
        "tags: [new]",
        "hypothesis:",
        "  # the runner's own open-model traffic; latency is timed from the intended send time",
        f"  traffic: {{http: {{url: {_q(url)}, rate: {_q(rate)}, timeout: 2s}}}}",
        "  # the SLO: judged before the fault (steady state), during it, and after the revert",
        "  checks:",
        f"    - availability >= {availability}",
        f"    - latency.p95 < {p95}",
        "  before: {window: 10s}          # steady state not met here: exit 3, nothing injected",
        "  during: {every: 1s, abort: [availability < 50%]}   # guardrail: reverts at once",
        "  after: {settle: 5s, window: 10s, recover_within: 30s}",
        "faults:",
        f"  - name: first-{fault_type.split('.')[-1].replace('_', '-')}",
        f"    type: {fault_type}" + (f"   # {fault.summary}" if fault else ""),
        f"    target: {target}   # count: hit one match; `percent: 50%` hits a share",
    ]
    lines += _with_lines(fault, params)
    lines.append("    start: 5s")
    if not instant:
        lines.append(f"    duration: {duration}          # reverted then, or at once on abort")
    lines += ["# refuse to run longer, or to hit more targets, than this",
              "limits: {max_duration: 5m, max_targets: 1}", ""]
    return "\n".join(lines)


def _target(flag: str, value: str, namespace: str | None) -> str:
    if flag == "pods":
        labels = dict(p.partition("=")[::2] for p in value.split(",") if p.strip())
        selector: dict[str, Any] = {"labels": {k.strip(): v.strip() for k, v in labels.items()}}
        if namespace:
            selector["namespace"] = namespace
        return json.dumps({"pods": selector, "count": 1})
    return json.dumps({TARGETS[flag][0]: {"name": value}, "count": 1})


def _with_lines(fault: Any, params: dict[str, str]) -> list[str]:
    fields = fault.params.fields if fault else {}
    lines = []
    for name, value in params.items():
        doc = fields[name].schema.doc if name in fields else ""
        lines.append(f"      {name}: {_q(value)}" + (f"   # {doc}" if doc else ""))
    for name, spec in fields.items():
        if name in params:
            continue
        if spec.required:  # left for the loader to name, with its location
            lines.append(f"      {name}: null   # required: {spec.schema.doc}")
        else:
            default = spec.schema.default
            shown = "null" if default is None else json.dumps(default)
            lines.append(f"      # {name}: {shown}   # {spec.schema.doc}")
    if not lines:
        return []
    active = any(not line.lstrip().startswith("#") for line in lines)
    return (["    with:" if active else "    # with:   (every parameter is optional)"]
            + lines)


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string is a YAML string, quoted where it must be


def _gameday(path: Path, title: str | None, experiments: list[str], interactive: bool) -> str:
    if not experiments and interactive:
        answer = click.prompt("Experiment files to run, in order (separated by spaces)")
        experiments = answer.split()
    if not experiments:
        raise click.UsageError("chaos init --gameday needs --experiment FILE (repeatable)")
    here = path.resolve().parent
    entries = [os.path.relpath(Path(e).resolve(), here) for e in experiments]
    lines = [
        "# Written by `chaos init --gameday`. Run it: chaos gameday run THIS_FILE",
        "# Format: docs/gamedays.md. Paths are relative to this file.",
        f"title: {_q(title or 'Game day: ' + ', '.join(Path(e).stem for e in experiments))}",
        "owners: [sre-oncall]               # who reviews the report",
        "experiments:                       # in order; `- parallel: [...]` runs a group at once",
        *[f"  - {_q(e)}" for e in entries],
        "stop_on: first_abort               # never | first_failure | first_abort",
        "reports: {formats: [html, markdown, junit, postmortem]}",
        "# schedule: {cron: \"0 10 * * TUE\", timezone: UTC}   # for `chaos gameday schedule`",
        "",
    ]
    return "\n".join(lines)


def _write_validated(path: Path, text: str, gameday: bool) -> None:
    """Validate as the file it will be (same directory, so relative paths resolve), then move
    it into place; on problems, print them against PATH and write nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = text.replace("THIS_FILE", str(path))
    temporary = path.with_name(f".{path.name}.chaos-init")
    temporary.write_text(text)
    try:
        if gameday:
            from chaos.model.gameday import load_gameday

            load_gameday(temporary)
        else:
            from chaos.runner.load import load_experiment

            load_experiment(temporary)
    except ExperimentInvalid as exc:
        temporary.unlink()
        click.echo(str(exc).replace(str(temporary), str(path)), err=True)
        click.echo(f"nothing was written: change the answers named above (the file would "
                   f"have been {path}; fault parameters are --with NAME=VALUE)", err=True)
        sys.exit(ExitCode.INVALID)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)
