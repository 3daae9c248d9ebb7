"""`chaos run`: experiments in order, one aggregate exit code, one JUnit file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import click

from chaos.cli import colour, machine
from chaos.cli.batch import refuse_empty, select, selection, stops_here, total_line
from chaos.cli.options import parse_vars, refuse_unused, run_registries, state_dir, variables
from chaos.cli.validate import is_ctk, load_any, note_skipped, show_warnings
from chaos.errors import EXIT_CODE_HELP, ChaosError, ExitCode, ExperimentInvalid, most_serious


@click.command(epilog=EXIT_CODE_HELP.replace("\n", "\n\n\b\n", 1) +
               "\n\nWith several files, the exit code is the most serious one "
               "(5, 143, 130, 4, 2, 3, 1, 0).")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--dry-run", is_flag=True, help="Resolve targets and print the plan; inject nothing.")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the journal here (one file only) instead of RUNS_DIR/RUN_ID/.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a JUnit XML report of all experiments here.")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("chaos-runs"), show_default=True, envvar="CHAOS_RUNS_DIR",
              help="Each run writes its journal and service logs to RUNS_DIR/RUN_ID/.")
@click.option("--seed", type=int, help="Seed for random target choices (recorded either way).")
@click.option("-q", "--quiet", is_flag=True, help="Only the summaries, no live events.")
@variables
@click.option("--var-file", "var_files", multiple=True, type=click.Path(dir_okay=False),
              help="Chaos Toolkit experiments: configuration/secrets from a JSON/YAML file "
                   "(`configuration:`, `secrets:`) or a .env file (repeatable).")
@click.option("--journal-format", type=click.Choice(["chaos", "ctk"]), default="chaos",
              show_default=True, help="Format of --journal: ours, or Chaos Toolkit's (for its "
                                      "tools; Chaos Toolkit experiments only). Both are "
                                      "written to RUNS_DIR/RUN_ID/ for those.")
@click.option("--rollback-strategy", type=click.Choice(["default", "always", "never",
                                                        "deviated"]),
              help="Chaos Toolkit experiments: when rollbacks play. default (ours): whenever "
                   "the method started, also after a failure or a signal; always/never/"
                   "deviated: as in Chaos Toolkit. [default: the file's runtime, else default]")
@click.option("--hypothesis-strategy", type=click.Choice(
    ["default", "before-method-only", "after-method-only", "during-method-only", "continuously",
     "skip"]), help="Chaos Toolkit experiments: when the steady-state hypothesis runs.")
@click.option("--hypothesis-frequency", type=click.FloatRange(min=0.05),
              help="Chaos Toolkit experiments: seconds between continuous hypothesis runs.")
@click.option("-x", "--fail-fast", is_flag=True, default=None,
              help="Stop at the first experiment that does not hold (exit code other than 0); "
                   "Chaos Toolkit experiments: also stop the method when the continuous "
                   "hypothesis fails.")
@selection
@colour.no_colour
@click.option("--metrics", "metrics_listen", metavar="HOST:PORT",
              help="Serve the runner's Prometheus metrics on /metrics there while it runs "
                   "(e.g. 127.0.0.1:9464; docs/telemetry.md).")
@click.option("--traces", is_flag=True,
              help="Export OpenTelemetry traces of each run over OTLP/HTTP, to where the "
                   "standard OTEL_EXPORTER_OTLP_* variables say (docs/telemetry.md).")
@state_dir
@machine.json_output(machine.run_document)
def run(paths: tuple[str, ...], dry_run: bool, journal_path: Path | None,
        junit_path: Path | None, runs_dir: Path, seed: int | None, quiet: bool,
        vars_: tuple[str, ...], var_files: tuple[str, ...], journal_format: str,
        rollback_strategy: str | None, hypothesis_strategy: str | None,
        hypothesis_frequency: float | None, fail_fast: bool | None,
        metrics_listen: str | None, traces: bool, tags: tuple[str, ...],
        exclude_tags: tuple[str, ...], state_dir: Path | None) -> None:
    """Run experiment FILEs (or every *.yaml and Chaos Toolkit *.json in DIRs) in order.

    Each run checks the steady state, injects the faults on their timeline, reverts them
    (also on failure, Ctrl-C, SIGTERM, and - through the watchdog - when the runner dies),
    checks again, and writes a journal.

    Chaos Toolkit experiments (JSON or YAML) run too, with rollbacks on failure and signals,
    exit 3 when the steady state is not met before the method (docs/chaostoolkit.md).
    """
    from chaos.runner.load import expand_paths

    files = expand_paths(list(paths), skipped=note_skipped)
    if not files:
        raise click.UsageError("no experiment files found in " + ", ".join(paths))
    if journal_path and len(files) > 1:
        raise click.UsageError("--journal takes one experiment; use --runs-dir for several")
    from chaos.model.advice import collected

    variables_ = parse_vars(vars_)
    experiments, problems = [], []
    for path in files:
        try:
            with collected() as warned:
                experiments.append(load_any(path, variables_))
        except ExperimentInvalid as exc:
            problems.append(exc)
            machine.record_invalid(exc)
            continue
        show_warnings(warned)  # as `chaos validate` says them, on stderr, before anything runs
    if problems:
        for invalid in problems:
            click.echo(str(invalid), err=True)
        _write_junit(junit_path, [_error_journal(e.source, ExitCode.INVALID, str(e))
                                  for e in problems])
        click.echo("nothing was run: fix the problems above (`chaos validate` checks files)",
                   err=True)
        sys.exit(ExitCode.INVALID)
    refuse_unused(variables_, [None if is_ctk(e) else e.uses for e in experiments], files)
    chosen = select(experiments, tags, exclude_tags)
    refuse_empty(experiments, chosen, tags, exclude_tags)
    experiments = chosen
    ctk = [e for e in experiments if is_ctk(e)]
    if journal_format == "ctk" and len(ctk) != len(experiments):
        raise click.UsageError("--journal-format ctk is for Chaos Toolkit experiments")
    if var_files and not ctk:
        raise click.UsageError("--var-file is for Chaos Toolkit experiments; use --var NAME=VALUE")
    if dry_run:
        if ctk:
            from chaos.ctk.session import print_ctk_plan

            print_ctk_plan(ctk, click.echo)
        native = [e for e in experiments if not is_ctk(e)]
        sys.exit(asyncio.run(print_plan(native, seed, state_dir)) if native else ExitCode.OK)
    ctk_options = None
    if ctk:
        from chaos.ctk.engine import CtkOptions
        from chaos.ctk.session import variables as ctk_variables

        config_vars, secret_vars = ctk_variables(variables_, var_files)
        ctk_options = CtkOptions(rollback_strategy, hypothesis_strategy, hypothesis_frequency,
                                 fail_fast, config_vars, secret_vars)
    from chaos.slo.traffic import loop_factory  # uvloop when installed (the `fast` extra)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        code = runner.run(_run_all(experiments, journal_path, junit_path, runs_dir, seed, quiet,
                                   state_dir, ctk_options, journal_format, metrics_listen,
                                   traces, fail_fast))
    sys.exit(code)


def _error_journal(source: str, code: int, reason: str) -> dict[str, object]:
    from chaos.runner.journal import error_journal

    return error_journal(source, code, reason)


def _write_junit(path: Path | None, journals: list[dict[str, object]]) -> None:
    if path is None:
        return
    from chaos.reports.junit import render

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(journals))


def _masking_echo(exp: Any) -> Any:
    """click.echo with the experiment's secret variables masked (chaos.model.redaction)."""
    from chaos.model.redaction import Redactor

    redactor = Redactor.of(getattr(exp, "variables", {}))
    return lambda text="", **kw: click.echo(redactor.text(str(text)), **kw)


async def print_plan(experiments: list, seed: int | None = None,  # type: ignore[type-arg]
                     state_dir: Path | None = None) -> int:
    """Print the plan; exit 2 when a selector matches nothing or a guard refuses (also for the
    runners and watchdogs of the other runs in the state dir)."""
    from chaos.adapters.registry import default_registry
    from chaos.runner.plan import plan
    from chaos.safety.ledger import Ledger
    from chaos.units import format_duration

    adapters = default_registry()
    code = ExitCode.OK
    for exp in experiments:
        echo = _masking_echo(exp)
        echo(f"── {exp.title}  ({exp.source})  [dry run: nothing is injected]")
        for s in exp.services:
            echo(f"  service {s.name}: {' '.join(s.run)}")
        if exp.hypothesis:
            checks = ", ".join(c.text for c in exp.hypothesis.checks)
            echo(f"  hypothesis: {checks} (before {format_duration(exp.hypothesis.before.window)}"
                 f", after {format_duration(exp.hypothesis.after.window)})")
        for p in await plan(exp, adapters, seed or 0, Ledger(state_dir)):
            timing = f"at {format_duration(p.start)}" + (
                f" for {format_duration(p.duration)}" if p.duration else "")
            echo(f"  {p.name}: {p.type} via {p.adapter} {timing}")
            for label in p.targets:
                echo(f"      -> {label}")
            if p.later:
                echo(f"      -> {p.later}")
            if p.problem:
                echo(f"      !! {p.problem}")
                code = ExitCode.INVALID
    return code


async def _run_all(experiments: list, journal_path: Path | None,  # type: ignore[type-arg]
                   junit_path: Path | None, runs_dir: Path, seed: int | None, quiet: bool,
                   state_dir: Path | None, ctk_options: Any = None,
                   journal_format: str = "chaos", metrics_listen: str | None = None,
                   traces: bool = False, fail_fast: bool | None = None) -> int:
    async with telemetry(metrics_listen, traces, state_dir) as subscribers:
        return await _run_each(experiments, journal_path, junit_path, runs_dir, seed, quiet,
                               state_dir, ctk_options, journal_format, subscribers, fail_fast)


@contextlib.asynccontextmanager
async def telemetry(metrics_listen: str | None, traces: bool,
                    state_dir: Path | None) -> AsyncIterator[list[Any]]:
    """The runner's own telemetry (metrics, traces): subscribers for every run's events,
    closed (bounded) at the end. Shared by `chaos run` and `chaos inject`."""
    subscribers: list[Any] = []
    server = tracer = None
    if metrics_listen is not None:
        from chaos.runner.metrics import MetricsServer, RunMetrics
        from chaos.safety.ledger import Ledger

        metrics = RunMetrics(Ledger(state_dir))
        server = MetricsServer(metrics.registry, metrics_listen)
        subscribers.append(metrics)
    try:
        if traces:
            from chaos.runner.tracing import RunTraces

            tracer = RunTraces()
            subscribers.append(tracer)
        yield subscribers
    finally:
        if tracer is not None:
            await asyncio.to_thread(tracer.close, TRACES_WAIT)
        if server is not None:
            await asyncio.to_thread(server.close, METRICS_LINGER)


def _notifier(exp: Any) -> Any:
    """The run's webhooks (`notify:`), delivered beside the run: never in a revert's way."""
    if not getattr(exp, "notify", None):
        return None
    from chaos.gameday.notify import Notifier

    return Notifier(exp.notify, warn=lambda m: click.echo(f"chaos: warning: {m}", err=True),
                    kind="run")


def _grafana(exp: Any) -> Any:
    if not getattr(exp, "grafana", None):
        return None
    from chaos.runner.grafana import GrafanaAnnotations

    return GrafanaAnnotations(exp.grafana,
                              warn=lambda m: click.echo(f"chaos: warning: {m}", err=True))


def _run_notifications(notifier: Any) -> Any:
    from chaos.gameday.notify import RunNotifications

    return RunNotifications(notifier)


METRICS_LINGER = 15.0  # Prometheus' default scrape interval: the final values get scraped
TRACES_WAIT = 5.0  # for the last spans to reach the collector


async def _run_each(experiments: list, journal_path: Path | None,  # type: ignore[type-arg]
                    junit_path: Path | None, runs_dir: Path, seed: int | None, quiet: bool,
                    state_dir: Path | None, ctk_options: Any, journal_format: str,
                    telemetry: list[Any], fail_fast: bool | None = None) -> int:
    import time

    from chaos.cli.view import LiveView
    from chaos.reports.terminal import summary
    from chaos.runner.lifecycle import INTERRUPTS, Lifecycle, handling_signals
    from chaos.runner.session import RunOptions, run_experiment

    options = RunOptions(runs_dir=runs_dir, journal_path=journal_path, state_dir=state_dir,
                         seed=seed)
    codes: list[int] = []
    journals: list[dict[str, object]] = []
    started = time.monotonic()
    for exp in experiments:
        subscribers: list[Any] = ([] if quiet else [LiveView(experiment=exp)]) + telemetry
        extra: list[str] = []
        try:
            record: Any
            lifecycle = Lifecycle()  # this run's; signals reach it while it lasts
            if is_ctk(exp):
                from chaos.ctk.engine import SIGNALS
                from chaos.ctk.session import activity_lines, live_activities, run_ctk_experiment

                with handling_signals(lifecycle, SIGNALS):
                    record = await run_ctk_experiment(
                        exp, ctk_options, options,
                        subscribers + ([] if quiet else [live_activities(subscribers[0])]),
                        journal_format, lifecycle, **run_registries())
                extra = activity_lines(record.journal)
            else:
                notifier, grafana = _notifier(exp), _grafana(exp)
                with handling_signals(lifecycle, INTERRUPTS):
                    record = await run_experiment(exp, options, subscribers + (
                        [_run_notifications(notifier)] if notifier else []) + (
                        [grafana] if grafana else []), lifecycle=lifecycle, **run_registries())
                if notifier is not None:
                    await notifier.drain()
                if grafana is not None:  # the last updates, bounded: never a hang at exit
                    await asyncio.to_thread(grafana.close, grafana.timeout + 1.0)
        except ChaosError as exc:  # could not even start (e.g. the state dir is unwritable)
            if not quiet:
                subscribers[0].close()  # the live status line
            journals.append(_error_journal(exp.source, exc.exit_code, str(exc)))
            codes.append(exc.exit_code)
            echo = _masking_echo(exp)
            echo(f"chaos: error: {exc}", err=True)
            if exc.hint:
                echo(f"  what to do: {exc.hint}", err=True)
            if stops_here(exc.exit_code, fail_fast):
                break
            continue
        journals.append(record.journal)
        if getattr(record, "journal_error", ""):
            click.echo(f"chaos: error: {record.journal_error}; the journal follows on stderr",
                       err=True)
            click.echo(json.dumps(record.journal, indent=2, default=str), err=True)
        machine.record(record.journal, record.journal_path)
        text = summary(record.journal, str(record.journal_path))
        if extra:  # Chaos Toolkit activities go before the verdict line
            head, _, tail = text.partition("\n  verdict:")
            text = "\n".join([head, *extra]) + "\n  verdict:" + tail
        echo = _masking_echo(exp)
        echo(colour.summary(text))
        if record.result.error is not None and record.result.error.hint:
            echo(f"  what to do: {record.result.error.hint}")
        codes.append(int(record.result.exit_code))
        if stops_here(record.result.exit_code, fail_fast):
            break  # the user asked to stop (a signal, or -x): do not start the next experiment
    if len(experiments) > 1:
        click.echo(colour.total(total_line(codes, time.monotonic() - started,
                                          len(experiments) - len(codes))))
    _write_junit(junit_path, journals)
    return most_serious(codes)
