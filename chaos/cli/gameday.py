"""`chaos gameday run|schedule|export`: game days from the terminal, cron or Kubernetes."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from chaos.cli.colour import no_colour
from chaos.cli.options import gameday_registries, parse_vars, refuse_unused, state_dir, variables
from chaos.errors import EXIT_CODE_HELP, ChaosError, ExitCode

OUT_HELP = ("Write RUNS_DIR/GAMEDAY_ID/ here (journals, reports); default: the file's "
            "reports.dir, else $CHAOS_RUNS_DIR, else ./chaos-runs.")


@click.group()
def gameday() -> None:
    """Run, schedule or export game days (docs/gamedays.md)."""


def _load(path: str, vars_: dict[str, str], uses: list[frozenset[str] | None] | None = None,
          ) -> tuple[Any, dict[str, str]]:
    """The game day, checked with every experiment it runs; and their titles by path. A --var
    that neither the game day nor any of its experiments uses is refused (exit 2), unless
    `uses` is given: then it collects what they use, for the caller to judge."""
    from chaos.gameday.run import check_experiments, load_gameday

    registries = gameday_registries()
    day = load_gameday(path, vars_, reporters=registries["reporters"])
    found: list[frozenset[str] | None] = []
    titles = check_experiments(day, vars_, found, faults=registries["faults"],
                               probes=registries["probes"])
    if uses is None:
        refuse_unused(vars_, found, [path])
    else:
        uses += found
    return day, titles


def _out(out: Path | None, day: Any) -> Path:
    import os

    return out or Path(day.reports_dir or os.environ.get("CHAOS_RUNS_DIR") or "chaos-runs")


def _prepare(runner: Any) -> None:
    """Create the game day's directory now: a directory nobody can write is a usage error
    before anything runs, not a crash."""
    from chaos.errors import UsageError

    try:
        runner.dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {runner.dir} for the journals and reports: "
                         f"{exc.strerror or exc}",
                         hint="pass --out DIR (or set reports.dir) to a directory you can "
                              "write to") from None


def _with_signals(main: Awaitable[int], on_signal: Callable[[int], None]) -> int:
    async def wrapped() -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            return await main
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    return asyncio.run(wrapped())


@gameday.command("run", epilog=EXIT_CODE_HELP.replace("\n", "\n\n\b\n", 1) +
                 "\n\nThe exit code is the most serious of the experiments' "
                 "(5, 143, 130, 4, 2, 3, 1, 0).")
@click.argument("file", type=click.Path())
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help=OUT_HELP)
@click.option("--metrics", "metrics_listen", metavar="HOST:PORT",
              help="Serve the game day's experiments and the ledger's gauges on /metrics "
                   "(docs/telemetry.md).")
@variables
@no_colour
@state_dir
def run(file: str, out: Path | None, vars_: tuple[str, ...], state_dir: Path | None,
        metrics_listen: str | None) -> None:
    """Run the game day in FILE now: its experiments in order, parallel groups together.

    Each experiment runs as `chaos run` (its own process, watchdog and journal). Ctrl-C or
    SIGTERM reverts the running experiments and starts no more. Reports and an aggregate
    journal (gameday.json) are written to OUT/GAMEDAY_ID/.
    """
    from chaos.gameday.notify import Notifier
    from chaos.gameday.run import GameDayRun

    variables_ = parse_vars(vars_)
    day, titles = _load(file, variables_)
    from chaos.cli.gameday_view import GameDayView

    view = GameDayView()
    notifier = Notifier(day.notify, warn=lambda m: view.echo(f"chaos: warning: {m}", err=True))
    runner = GameDayRun(day, _out(out, day), variables=variables_, state_dir=state_dir,
                        notifier=notifier, echo=view.echo, titles=titles,
                        **gameday_registries())
    _prepare(runner)
    server = _metrics(runner, metrics_listen, state_dir) if metrics_listen else None
    click.echo(f"game day {runner.id}: {day.title} ({len(day.experiments)} experiments)")
    try:
        code = _with_signals(view.around(runner), runner.interrupt)
    finally:
        if server is not None:
            server.close(METRICS_LINGER)
    _summary(runner, code)
    sys.exit(code)


METRICS_LINGER = 15.0  # as `chaos run --metrics`: the final values get scraped


def _metrics(runner: Any, listen: str, state_dir: Path | None) -> Any:
    """The ledger's gauges and the experiments' progress; each experiment runs as its own
    `chaos run`, so the faults are seen through the ledger they all share."""
    from chaos.runner.metrics import ExperimentsCollector, MetricsServer, ledger_registry
    from chaos.safety.ledger import Ledger

    registry = ledger_registry(Ledger(state_dir))
    registry.register(ExperimentsCollector(lambda: [
        (slot.summary.get("title") or runner.titles.get(slot.ref.file) or slot.ref.file,
         slot.status, slot.summary.get("verdict") or "") for slot in runner.slots]))
    return MetricsServer(registry, listen)


def _summary(runner: Any, code: int) -> None:
    from chaos.reports import analysis

    collection = runner.collection()
    all_facts = [analysis.facts(e) for e in collection.entries]
    for i, (f, slot) in enumerate(zip(all_facts, runner.slots), 1):
        cells = analysis.summary_cells(i, f)
        what = f.title if f.title != f.label else slot.ref.shown
        click.echo(f"  {cells[0]:>2}. {f.verdict:<21} score {cells[3]:>3}  {what}"
                   + (" (not started)" if f.verdict == "skipped" else ""))
    click.echo(f"resilience score: {analysis.score_text(analysis.resilience_score(all_facts))}")
    for kind, name in runner.reports.items():
        click.echo(f"  {kind}: {runner.dir / name}")
    click.echo(f"journal: {runner.dir / 'gameday.json'}  (exit {code})")


@gameday.command("schedule")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help=OUT_HELP)
@click.option("--run-now", is_flag=True, help="Also run every game day once at start.")
@click.option("--starting-deadline", default="60s", show_default=True, metavar="DURATION",
              help="A slot later than this (machine asleep, scheduler stopped) is reported as "
                   "missed, not run late.")
@variables
@state_dir
def schedule(files: tuple[str, ...], out: Path | None, run_now: bool, starting_deadline: str,
             vars_: tuple[str, ...], state_dir: Path | None) -> None:
    """Run game-day FILEs on their schedules, in the foreground, until SIGINT/SIGTERM.

    A game day never overlaps itself; slots missed (still running, machine asleep) are
    reported. A signal reverts the running experiments, then the scheduler exits (130/143).
    """
    from chaos.errors import UsageError
    from chaos.gameday.notify import Notifier
    from chaos.gameday.run import GameDayRun
    from chaos.gameday.schedule import (
        MissReporter,
        Scheduler,
        describe_slot,
        system_clock,
        until,
    )
    from chaos.units import parse_duration

    variables_ = parse_vars(vars_)
    try:
        deadline = parse_duration(starting_deadline)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--starting-deadline") from None
    uses: list[frozenset[str] | None] = []
    days = [_load(f, variables_, uses)[0] for f in files]
    refuse_unused(variables_, uses, list(files))
    for day in days:
        if day.schedule is None:
            raise UsageError(f"{day.source} has no schedule",
                             hint="add `schedule: {cron: \"0 10 * * TUE\", timezone: UTC}`, "
                                  "or run it once with `chaos gameday run`")
    active: set[GameDayRun] = set()
    received: list[int] = []

    async def start(day: Any) -> int:
        try:  # the file is read again: edits apply to the next run
            fresh, titles = _load(day.source, variables_, [])
        except ChaosError as exc:  # a broken edit must not stop the scheduler
            click.echo(f"chaos: error: {exc}", err=True)
            return int(ExitCode.INVALID)
        notifier = Notifier(fresh.notify, warn=lambda m: click.echo(f"chaos: warning: {m}",
                                                                    err=True))
        runner = GameDayRun(fresh, _out(out, fresh), variables=variables_, state_dir=state_dir,
                            notifier=notifier, echo=click.echo, titles=titles,
                            **gameday_registries())
        try:
            _prepare(runner)
        except ChaosError as exc:  # e.g. the disk was remounted read-only: try the next slot
            click.echo(f"chaos: error: {exc}; {fresh.title}: this run is skipped", err=True)
            return int(ExitCode.INVALID)
        active.add(runner)
        click.echo(f"game day {runner.id}: {fresh.title}: started")
        try:
            code = await runner.run()
        finally:
            active.discard(runner)
        slot = scheduler.next[id(day)]
        then = ("the scheduler stops" if received else
                f"next at {describe_slot(slot, day.schedule)}")
        click.echo(f"game day {runner.id}: {fresh.title}: exit {code}, report in {runner.dir}; "
                   f"{then}")
        return code

    misses = MissReporter(lambda m: click.echo(m, err=True),
                          warn=lambda m: click.echo(f"chaos: warning: {m}", err=True))
    scheduler = Scheduler(days, start, report=misses, starting_deadline=deadline,
                          run_now=run_now)
    now = system_clock()
    for day in days:
        slot = scheduler.slots[id(day)].after(now)
        click.echo(f"scheduled: {day.title} ({day.source}): "
                   + ("now (--run-now), then " if run_now else "")
                   + f"at {describe_slot(slot, day.schedule)} (in {until(slot, now)})")
    click.echo("the scheduler runs in the foreground; Ctrl-C or SIGTERM reverts what runs and "
               "stops it")

    def on_signal(signum: int) -> None:
        if not received:
            click.echo(f"{signal.Signals(signum).name}: stopping the scheduler"
                       + (f" after reverting {len(active)} running game day(s)" if active
                          else ""))
        received.append(signum)
        for runner in list(active):
            runner.interrupt(signum)
        scheduler.stop()

    async def serve() -> int:
        await scheduler.serve()
        await misses.drain()
        return 0

    _with_signals(serve(), on_signal)
    click.echo("scheduler stopped")
    if received:
        sys.exit(ExitCode.INTERRUPTED if received[0] == signal.SIGINT else ExitCode.TERMINATED)
    sys.exit(ExitCode.OK)


@gameday.command("export")
@click.argument("file", type=click.Path())
@click.option("--kubernetes", "kubernetes_", is_flag=True,
              help="Export as Kubernetes manifests: a CronJob running `chaos gameday run`.")
@click.option("--argo", is_flag=True,
              help="Export as an Argo Workflows Workflow (CronWorkflow with a schedule): one "
                   "pod per experiment, parallel groups as DAG levels.")
@click.option("--storage", default="1Gi", show_default=True,
              help="--argo: size of the volume the steps share (journals, report).")
@click.option("-n", "--namespace", default="chaos", show_default=True,
              help="Namespace of the CronJob, ServiceAccount and ConfigMap.")
@click.option("--target-namespace", "targets", multiple=True,
              help="Namespace the experiments act on (a Role each; default: --namespace).")
@click.option("--image", help="Image with chaos installed (default: the adapter's, built from "
                               "the repository's Dockerfile).")
@click.option("--name", help="Name of the CronJob and ConfigMap (default: from the title).")
@click.option("--cluster-role", is_flag=True,
              help="Include the ClusterRole for node faults even if no experiment uses one.")
@click.option("--k8s-version", default=None, metavar="X.Y.Z",
              help="Validate the manifests offline against this Kubernetes version's schema "
                   "(needs kubernetes-validate).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here instead of standard output.")
@variables
def export(file: str, kubernetes_: bool, argo: bool, storage: str, namespace: str,
           targets: tuple[str, ...], image: str | None, name: str | None, cluster_role: bool,
           k8s_version: str | None, output: Path | None, vars_: tuple[str, ...]) -> None:
    """Export FILE as a Kubernetes CronJob, or an Argo workflow, with its RBAC and a ConfigMap
    of its files."""
    from chaos.errors import ExperimentInvalid, UsageError
    from chaos.gameday import argo as argo_exporter
    from chaos.gameday import export as exporter

    if kubernetes_ == argo:
        raise UsageError("say what to export to: --kubernetes (a CronJob) or --argo (an Argo "
                         "Workflows Workflow)", hint="pass exactly one of them")
    from chaos.gameday.run import experiment_vars
    from chaos.runner.load import load_experiment

    variables_ = parse_vars(vars_)
    day, _ = _load(file, variables_)
    registries = gameday_registries()
    types = []
    for ref in day.experiments:
        try:
            types += [f.type for f in load_experiment(
                ref.path, experiment_vars(day, ref, variables_), registries["faults"],
                registries["probes"]).faults]
        except ExperimentInvalid:  # a Chaos Toolkit file (checked by _load): no types to read
            continue
    build = argo_exporter.manifests if argo else exporter.manifests
    extra = {"storage": storage} if argo else {}
    docs = build(day, namespace=namespace, name=name,
                 image=image or exporter.DEFAULT_IMAGE, target_namespaces=targets,
                 cluster_role=cluster_role, fault_types=types, variables=variables_, **extra)
    if k8s_version and argo:  # kubernetes-validate knows no Argo kinds: the RBAC and files
        docs_checked = [d for d in docs if not d["apiVersion"].startswith("argoproj.io/")]
    else:
        docs_checked = docs
    if k8s_version:
        try:
            problems = exporter.validate(docs_checked, k8s_version)
        except ImportError:
            raise UsageError("kubernetes-validate is not installed",
                             hint="pip install kubernetes-validate, or drop --k8s-version") from None
        if problems:
            raise UsageError("the exported manifests do not validate:\n  " +
                             "\n  ".join(problems), hint="report this as a bug in chaos")
    text = exporter.to_yaml(docs)
    if output:
        output.write_text(text)
        click.echo(f"wrote {len(docs)} manifests ({', '.join(d['kind'] for d in docs)}) to "
                   f"{output}" + (f"; valid for Kubernetes {k8s_version}" if k8s_version
                                  else ""), err=True)
    else:
        click.echo(text, nl=False)
