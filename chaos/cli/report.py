"""`chaos report`: render journals again."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("journals", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "junit", "json"]), default="text",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here instead of standard output.")
def report(journals: tuple[Path, ...], fmt: str, output: Path | None) -> None:
    """Render JOURNAL files (written by `chaos run`)."""
    from chaos.errors import UsageError
    from chaos.reports import junit, terminal
    from chaos.runner.journal import read

    documents = []
    for path in journals:
        try:
            documents.append(read(path))
        except ValueError as exc:
            raise UsageError(str(exc), hint="pass a journal.json written by `chaos run`") from None
    if fmt == "junit":
        text = junit.render(documents)
    elif fmt == "json":
        text = json.dumps(documents if len(documents) > 1 else documents[0], indent=2)
    else:
        text = "\n\n".join(terminal.summary(d, str(p)) for d, p in zip(documents, journals))
    if output:
        output.write_text(text)
    else:
        click.echo(text)
