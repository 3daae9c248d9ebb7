"""`chaos report`: render journals (or a game day's gameday.json) again, in any format."""

from __future__ import annotations

import json
from pathlib import Path

import click

FORMATS = ["text", "junit", "json", "html", "markdown", "postmortem", "all"]


@click.command()
@click.argument("journals", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="html: one self-contained file with charts; markdown: for PR comments and "
                   "wikis; postmortem: a draft per failed or aborted experiment; all: every "
                   "format into the --output directory.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Write here instead of standard output (a directory for --format all).")
def report(journals: tuple[Path, ...], fmt: str, output: Path | None) -> None:
    """Render JOURNAL files (journal.json of `chaos run`, gameday.json of `chaos gameday run`);
    a directory stands for the *.json files in it (the `--journal` files of several runs, as an
    Argo export's report step passes them)."""
    from chaos.errors import UsageError
    from chaos.reports import bundle, collection, html, junit, markdown, terminal

    listed = [p for path in journals
              for p in (sorted(path.glob("*.json")) if path.is_dir() else [path])]
    if not listed:
        raise UsageError(f"no journal in {', '.join(str(p) for p in journals)}",
                         hint="pass journal files, or a directory holding some (*.json)")
    journals = tuple(listed)
    try:
        loaded = collection.load(journals)
    except ValueError as exc:
        raise UsageError(str(exc), hint="pass a journal.json written by `chaos run` or a "
                                        "gameday.json written by `chaos gameday run`") from None
    documents = loaded.journals
    if fmt == "all":
        if output is None:
            raise UsageError("--format all writes several files", hint="add --output DIR")
        if output.exists() and not output.is_dir():
            raise UsageError(f"{output} is a file; --format all writes a directory of reports",
                             hint="pass a directory (it is created if needed)")
        try:
            written = bundle.write(loaded, output, ("html", "markdown", "junit", "postmortem"))
        except OSError as exc:
            raise UsageError(f"cannot write the reports into {output}: {exc.strerror or exc}",
                             hint="pass a directory you can write to") from None
        for name in written.values():
            click.echo(str(output / name))
        return
    if fmt == "junit":
        text = junit.render_collection(loaded)
    elif fmt == "json":
        text = json.dumps(documents if len(documents) != 1 else documents[0], indent=2)
    elif fmt == "html":  # links to the journals, relative to where the report goes
        text = html.render(loaded, bundle.links(loaded, (output or Path("x")).resolve().parent))
    elif fmt == "markdown":
        text = markdown.render(loaded)
    elif fmt == "postmortem":
        drafts = bundle.drafts(loaded)
        text = "\n---\n\n".join(drafts.values()) if drafts else \
            "<!-- no failed or aborted experiment: no post-mortem draft -->\n"
    else:
        text = "\n\n".join(terminal.summary(e.journal, str(e.path)) for e in loaded.entries
                           if e.journal is not None)
    if output:
        try:  # `-o reports/chaos.xml` in CI: the directory may not exist yet
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}",
                             hint="pass a file path you can write to") from None
    else:
        click.echo(text)
