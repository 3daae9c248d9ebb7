"""`chaos validate`: every problem in every file, with file:line:col, at once."""

from __future__ import annotations

import sys
from typing import Any

import click

from chaos.cli.options import parse_vars, refuse_unused, variables
from chaos.errors import ExitCode, ExperimentInvalid, Problem


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@variables
@click.option("--json", "as_json", is_flag=True,  # chaos.cli.machine, imported only then
              help="Print one JSON document on stdout when done (shape: "
                   "docs/machine-output.md); progress and problems go to stderr.")
@click.option("--strict", is_flag=True,
              help="A file with warnings is invalid too (exit 2): for CI that keeps them out.")
def validate(paths: tuple[str, ...], vars_: tuple[str, ...], as_json: bool = False,
             strict: bool = False) -> None:
    """Check experiment FILEs (or DIRs: their *.yaml and Chaos Toolkit *.json) without running
    anything.

    Chaos Toolkit experiments (JSON or YAML) are checked too, every problem at once. Warnings
    (`FILE:LINE:COL: warning: ...`, e.g. a `match` no request can meet) leave a file valid
    unless --strict.

    Exit 0 when all are valid, 2 when any is not.
    """
    results: list[dict[str, Any]] = []
    if not as_json:  # the common case keeps validate's start-up (DESIGN.md)
        _validate(paths, vars_, results, strict)
        return
    from chaos.cli import machine

    with machine.one_document(True, lambda code, error:
                              machine.validate_document(code, error, results)):
        _validate(paths, vars_, results, strict)


def _validate(paths: tuple[str, ...], vars_: tuple[str, ...],
              results: list[dict[str, Any]], strict: bool = False) -> None:
    from chaos.model.advice import collected
    from chaos.model.loader import GameDayFile
    from chaos.runner.load import expand_paths

    variables_ = parse_vars(vars_)
    files = expand_paths(list(paths), skipped=note_skipped)
    if not files:
        raise click.UsageError("no experiment files found in " + ", ".join(paths))
    bad = 0
    fields = False  # did any problem name a field (else: a file that could not be read)
    uses: list[frozenset[str] | None] = []
    for path in files:
        try:
            try:
                with collected() as warned:
                    exp = load_any(path, variables_)
            except GameDayFile:
                from chaos.cli.options import gameday_registries
                from chaos.gameday.run import check_experiments, load_gameday

                given = gameday_registries()
                day = load_gameday(path, variables_, reporters=given["reporters"])
                check_experiments(day, variables_, uses, faults=given["faults"],
                                  probes=given["probes"])
                results.append({"path": path, "valid": True, "kind": "gameday",
                                "experiments": len(day.experiments), "problems": []})
                click.echo(f"{path}: ok (game day: {len(day.experiments)} experiment(s))")
                continue
        except ExperimentInvalid as exc:
            bad += 1
            fields = fields or any(p.path for p in exc.problems)
            results.append({"path": path, "valid": False, "kind": None, "problems": exc})
            click.echo(str(exc), err=True)
            continue
        show_warnings(warned)
        if warned and strict:
            bad += 1
            fields = True
            results.append({"path": path, "valid": False, "kind": None,
                            "problems": ExperimentInvalid(warned, source=path)})
            click.echo(f"{path}: invalid with --strict: {len(warned)} warning(s)", err=True)
            continue
        uses.append(None if is_ctk(exp) else exp.uses)
        results.append({"path": path, "valid": True,
                        "kind": "chaostoolkit" if is_ctk(exp) else "experiment",
                        "faults": None if is_ctk(exp) else len(exp.faults), "problems": []})
        if is_ctk(exp):
            click.echo(f"{path}: ok (Chaos Toolkit experiment: "
                       f"{len(exp.document.get('method') or [])} method activities, "
                       f"{len(exp.document.get('rollbacks') or [])} rollback(s))")
            continue
        click.echo(f"{path}: ok ({len(exp.faults)} fault(s), "
                   f"{len(exp.hypothesis.probes) if exp.hypothesis else 0} probe(s))")
    if not bad:  # a var used only by an invalid file cannot be told from a typo
        refuse_unused(variables_, uses, files)
    if bad:
        click.echo(f"{bad} of {len(files)} file(s) invalid: " + (
            "fix the fields named above (`chaos schema` gives editors the format)" if fields
            else "the file(s) above could not be read as experiments (missing, empty, or not "
                 f"valid {_formats(files)})"), err=True)
    sys.exit(ExitCode.INVALID if bad else ExitCode.OK)


def load_any(path: str, variables_: dict[str, str]) -> Any:
    """A native Experiment, or a CtkExperiment when the loader recognises Chaos Toolkit's
    format (it hands over the tree it parsed; chaos.ctk is imported only then)."""
    from chaos.cli.options import given
    from chaos.faults import FaultRegistry
    from chaos.model.loader import ChaosToolkitFile
    from chaos.runner.load import load_experiment
    from chaos.slo.probe_kinds import ProbeKinds

    try:  # with the registries the command was given (tests), else the lazy defaults
        return load_experiment(path, variables_, given("faults", FaultRegistry),
                               given("probes", ProbeKinds))
    except ChaosToolkitFile as exc:
        from chaos.ctk.document import from_tree

        return from_tree(exc.root, exc.text, exc.source)


def show_warnings(warnings: list[Problem]) -> None:
    """`FILE:LINE:COL: warning: FIELD: what`, as compilers print them, on stderr."""
    for warning in warnings:
        where = f"{warning.location}: " if warning.location else ""
        click.echo(f"{where}warning: {warning.path}: {warning.message}", err=True)


def note_skipped(path: str, why: str) -> None:
    """A JSON file in a directory that is not run (chaos.runner.load.expand_paths)."""
    click.echo(f"note: {path}: skipped, {why}", err=True)


def is_ctk(experiment: object) -> bool:
    return type(experiment).__name__ == "CtkExperiment"  # chaos.ctk stays unimported otherwise


def _formats(files: list[str]) -> str:
    """What the unreadable files should have been: JSON for .json files (Chaos Toolkit's)."""
    kinds = {"JSON" if f.lower().endswith(".json") else "YAML" for f in files}
    return "/".join(sorted(kinds, reverse=True))
