"""`chaos validate`: every problem in every file, with file:line:col, at once."""

from __future__ import annotations

import sys

import click

from chaos.cli.options import parse_vars, variables
from chaos.errors import ExitCode, ExperimentInvalid


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@variables
def validate(paths: tuple[str, ...], vars_: tuple[str, ...]) -> None:
    """Check experiment FILEs (or DIRs of *.yaml) without running anything.

    Exit 0 when all are valid, 2 when any is not.
    """
    from chaos.runner.load import expand_paths, load_experiment

    variables_ = parse_vars(vars_)
    files = expand_paths(list(paths))
    if not files:
        raise click.UsageError("no experiment files found in " + ", ".join(paths))
    bad = 0
    for path in files:
        try:
            exp = load_experiment(path, variables_)
        except ExperimentInvalid as exc:
            bad += 1
            click.echo(str(exc), err=True)
            continue
        click.echo(f"{path}: ok ({len(exp.faults)} fault(s), "
                   f"{len(exp.hypothesis.probes) if exp.hypothesis else 0} probe(s))")
    if bad:
        click.echo(f"{bad} of {len(files)} file(s) invalid: fix the fields named above "
                   "(`chaos schema` gives editors the format)", err=True)
    sys.exit(ExitCode.INVALID if bad else ExitCode.OK)
