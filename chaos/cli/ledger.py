"""`chaos status`, `chaos stop`, `chaos recover`: the ledger, read and acted on by hand."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from chaos.cli.completion import injection_ids
from chaos.cli.options import registry_of
from chaos.cli.options import state_dir as state_dir_option
from chaos.errors import ExitCode

if TYPE_CHECKING:
    from chaos.safety.ledger import Entry, Ledger, Quarantined, RunInfo


def _ledger(state_dir: Path | None):  # type: ignore[no-untyped-def]
    from chaos.safety.ledger import Ledger

    return Ledger(state_dir)


@click.command()
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document (chaos.status/v1, docs/machine-output.md).")
@state_dir_option
def status(as_json: bool, state_dir: Path | None) -> None:
    """List active injections from the ledger, across all runs.

    A run whose runner is gone while injections are open needs `chaos recover`: then the
    exit code is 5 (something may still be injected), else 0.
    """
    from chaos.safety.recover import runner_alive

    ledger = _ledger(state_dir)
    rows = []
    quarantined = []
    for info in ledger.runs():
        quarantined += [{"run": info.run, "file": str(q.path), "line": q.line,
                         "reason": q.reason, "may_hide_injection": q.may_hide_injection}
                        for q in _report_quarantined(info)]
        open_entries = [e for e in info.entries if e.is_open]
        if not open_entries:
            continue
        alive = runner_alive(info)
        for e in open_entries:
            rows.append({"id": e.id, "run": e.run, "fault": e.fault, "target": e.target,
                         "state": e.state, "since": e.created, "ends": e.ends,
                         "deadline": e.deadline,
                         "runner_pid": info.pid, "runner_alive": alive, "error": e.error})
    orphaned = any(not r["runner_alive"] for r in rows)
    if as_json:
        from chaos.cli.machine import status_document

        code = ExitCode.REVERT_FAILED if orphaned else ExitCode.OK
        click.echo(json.dumps(status_document(int(code), ledger.directory, rows, quarantined),
                              indent=2, default=str))
        sys.exit(code)
    if not rows:
        click.echo(f"no active injections (ledger: {ledger.directory})")
        return
    from chaos.cli.colour import paint

    now = time.time()
    table = [("ID", "FAULT", "TARGET", "STATE", "LEFT", "RUNNER")]
    for r in rows:
        until = r["ends"] or r["deadline"]
        left = f"{max(0.0, until - now):.0f}s" if until else "no deadline"
        who = f"running (pid {r['runner_pid']})" if r["runner_alive"] else "RUNNER GONE"
        table.append((r["id"], r["fault"], r["target"], r["state"], left, who))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]) - 1)]
    for n, row in enumerate(table):
        line = "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1]
        click.echo(paint(line, "bold") if n == 0 else
                   paint(line, "ERROR") if row[-1] == "RUNNER GONE" else line)
    for r in rows:
        if r["error"]:
            click.echo(f"{r['id']}: last error: {r['error']}")
    if orphaned:  # scripts and CI see it too, not only a reader of the table
        click.echo("RUNNER GONE: injections are open with no runner holding them; "
                   "run `chaos recover`")
        sys.exit(ExitCode.REVERT_FAILED)


@click.command()
@click.argument("ids", nargs=-1, shell_complete=injection_ids)
@click.option("--all", "everything", is_flag=True, help="Revert every active injection.")
@state_dir_option
def stop(ids: tuple[str, ...], everything: bool, state_dir: Path | None) -> None:
    """Revert active injections: by injection ID, by run ID, or --all.

    Stopping a whole run (its RUN_ID, or --all) also ends its runner with SIGTERM, so a
    `chaos inject` in another terminal returns (exit 143). Stopping one injection leaves its
    run going: the run sees the revert in the ledger, records who reverted it and when, and
    ends that fault there (a `chaos inject` of it returns, exit 0).
    """
    from chaos.safety.recover import runner_alive

    if not ids and not everything:
        raise click.UsageError("give injection or run IDs (see `chaos status`), or --all")
    ledger = _ledger(state_dir)
    entries = [e for e in ledger.open_entries()
               if everything or e.id in ids or e.run in ids]
    if not entries:
        click.echo("nothing to stop: no active injection matches")
        sys.exit(ExitCode.OK if everything else ExitCode.INVALID)
    code = _revert(ledger, entries, by="chaos stop")
    for run in sorted({e.run for e in entries if everything or e.run in ids}):
        info = ledger.run_info(run)
        if runner_alive(info):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(info.pid, signal.SIGTERM)
                click.echo(f"stopped run {run} (runner pid {info.pid})")
    sys.exit(code)


@click.command()
@click.option("--force", is_flag=True,
              help="Also revert injections of runs whose runner is still alive (with "
                   "--kubernetes: also marks that have not expired yet).")
@click.option("--kubernetes", "kubernetes", is_flag=True,
              help="Also find and undo what chaos left in the cluster by its labels: "
                   "NetworkPolicies, scaled-down workloads, cordoned or tainted nodes.")
@click.option("--context", help="kubeconfig context (with --kubernetes; default: current).")
@click.option("--kubeconfig", type=click.Path(dir_okay=False),
              help="kubeconfig file (with --kubernetes; default: $KUBECONFIG, ~/.kube/config).")
@click.option("-n", "--namespace", "namespaces", multiple=True,
              help="Namespace to sweep (with --kubernetes; repeatable; default: the "
                   "context's). Nodes are always swept.")
@click.option("--allow-kube-system", is_flag=True, help="Let --namespace name kube-system.")
@state_dir_option
def recover(force: bool, kubernetes: bool, context: str | None, kubeconfig: str | None,
            namespaces: tuple[str, ...], allow_kube_system: bool,
            state_dir: Path | None) -> None:
    """Revert everything left open by runs whose runner and watchdog died.

    Safe to run any time: reverts are idempotent, and a target that is gone counts as reverted.
    With --kubernetes, objects chaos marked in the cluster (label chaos.dev/run) whose
    chaos.dev/expires annotation has passed are undone too, even with no ledger at hand.
    """
    from chaos.safety.recover import runner_alive

    if not kubernetes and (context or kubeconfig or namespaces or allow_kube_system):
        raise click.UsageError("--context, --kubeconfig, --namespace and --allow-kube-system "
                               "go with --kubernetes")
    ledger = _ledger(state_dir)
    entries = []
    unknown = 0  # quarantined records that may stand for an injection nobody can revert
    for info in ledger.runs():
        unknown += sum(q.may_hide_injection for q in _report_quarantined(info))
        open_entries = [e for e in info.entries if e.is_open]
        if open_entries and (force or not runner_alive(info)):
            entries += open_entries
        elif open_entries:
            click.echo(f"run {info.run} is still running (pid {info.pid}); skipped "
                       "(--force reverts it anyway)")
    code = _revert(ledger, entries, by="chaos recover") if entries else ExitCode.OK
    if unknown:
        click.echo(f"chaos recover: {unknown} unreadable ledger record(s) above may stand for "
                   "injections it cannot revert; check those targets by hand, then fix or "
                   "delete the lines", err=True)
        code = ExitCode.REVERT_FAILED
    if kubernetes:
        settings = {k: v for k, v in (("context", context), ("kubeconfig", kubeconfig),
                                      ("allow_kube_system", allow_kube_system)) if v}
        code = max(code, _sweep(settings, namespaces, force))
    elif not entries and not unknown:
        click.echo("nothing to recover")
    sys.exit(code)


def _report_quarantined(info: RunInfo) -> tuple[Quarantined, ...]:
    """Say where each record the ledger could not trust is; the rest of it still counts."""
    for q in info.quarantined:
        click.echo(f"chaos: ledger record quarantined, {q} (left out; the other records "
                   "count)", err=True)
    return info.quarantined


def _sweep(settings: Mapping[str, object], namespaces: tuple[str, ...], force: bool) -> int:
    from chaos.adapters.kubernetes.api import ApiFailed, api_for
    from chaos.adapters.kubernetes.sweep import sweep
    from chaos.errors import ChaosError

    try:
        api = api_for(settings)
        chosen = list(namespaces) or [api.conn.default_namespace()]
        found = asyncio.run(sweep(api, chosen, everything=force, settings=settings))
    except ChaosError as exc:
        click.echo(f"chaos recover --kubernetes: {exc}", err=True)
        if exc.hint:
            click.echo(f"  what to do: {exc.hint}", err=True)
        # the API failing mid-sweep may leave marks behind (5); a refused namespace, a missing
        # kubeconfig or context is the command's input (its own code, 2)
        return int(ExitCode.REVERT_FAILED if isinstance(exc, ApiFailed) else exc.exit_code)
    for item in found:
        click.echo(f"{item.outcome:<9} {item.what} (run {item.run})")
    if any(item.outcome.startswith("skipped") for item in found):
        click.echo("skipped marks belong to runs that may still hold their fault; they are "
                   "undone once expired, or now with --force")
    if not found:
        click.echo(f"nothing chaos marked on nodes or in {', '.join(chosen)} "
                   f"({api.conn.describe()})")
    if any(item.outcome.startswith("failed") for item in found):
        return int(ExitCode.REVERT_FAILED)  # an in-pod fault's stop container failed
    return int(ExitCode.OK)


def _revert(ledger: Ledger, entries: list[Entry], *, by: str) -> int:
    from chaos.adapters.registry import AdapterRegistry, default_registry
    from chaos.safety.recover import revert_all

    adapters = registry_of("adapters", AdapterRegistry, default_registry)
    results = asyncio.run(revert_all(entries, ledger, adapters, by=by))
    failed = 0
    unrecorded = {u.id for u in ledger.unrecorded}
    for r in results:
        if r.outcome == "failed":
            failed += 1
            click.echo(f"FAILED  {r.entry.fault} on {r.entry.target}: {r.error}", err=True)
        else:
            click.echo(f"{r.outcome:<9} {r.entry.fault} on {r.entry.target} ({r.entry.id})"
                       + ("  [not recorded]" if r.entry.id in unrecorded else ""))
    if ledger.unrecorded:
        click.echo(f"{by}: reverted, but could not record it — run `chaos recover` once the "
                   f"state dir is writable: {ledger.unrecorded[0].error}", err=True)
    return ExitCode.REVERT_FAILED if failed or ledger.unrecorded else ExitCode.OK


@click.command()
@click.option("--listen", default="127.0.0.1:9465", show_default=True, metavar="HOST:PORT",
              help="Where to serve /metrics.")
@state_dir_option
def exporter(listen: str, state_dir: Path | None) -> None:
    """Serve the ledger's gauges on /metrics until stopped (SIGINT/SIGTERM).

    chaos_faults_left_open counts open injections whose runner is gone or whose deadline passed
    (alert on it > 0: someone must run `chaos recover`); chaos_ledger_open_faults counts every
    open injection. Both are read from the ledger at each scrape.
    """
    from chaos.runner.metrics import MetricsServer, ledger_registry

    server = MetricsServer(ledger_registry(_ledger(state_dir)), listen)
    click.echo(f"serving the ledger's metrics on http://{listen}/metrics", err=True)
    stopped = False

    def stop(*_: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopped:
        time.sleep(0.2)
    server.close()
