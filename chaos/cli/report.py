"""`chaos report`: render journals (or a game day's gameday.json) again, in any format."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from chaos.cli.options import registry_of
from chaos.errors import UsageError

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from chaos.reports.registry import ReporterRegistry


class FormatChoice(click.ParamType[str, object]):
    """`--format`: a registered report format, or all. The registry is read when the option
    is used or shown, not when the CLI is imported: `chaos --help` loads no plugins."""

    name = "format"

    def registry(self, ctx: click.Context | None) -> ReporterRegistry:
        from chaos.reports.registry import ReporterRegistry, default_registry

        return registry_of("reporters", ReporterRegistry, default_registry, ctx)

    def choices(self, ctx: click.Context | None) -> list[str]:
        return [*self.registry(ctx).names(), "all"]

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return f"[{'|'.join(self.choices(ctx or click.get_current_context(silent=True)))}]"

    def shell_complete(self, ctx: click.Context, param: click.Parameter,
                       incomplete: str) -> list[CompletionItem]:
        from click.shell_completion import CompletionItem

        return [CompletionItem(c) for c in self.choices(ctx) if c.startswith(incomplete)]

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        if value in self.choices(ctx):
            return str(value)
        return self.fail(f"{value!r} is not one of {', '.join(map(repr, self.choices(ctx)))}.",
                         param, ctx)


class FormatOption(click.Option):
    """`--format`'s help lists every registered format with its summary, plugins' too: it is
    written when the help is shown, from the registry, never by hand."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        assert isinstance(self.type, FormatChoice)
        self.help = "; ".join([f"{r.name}: {r.summary.rstrip('.')}"
                               for r in self.type.registry(ctx)]
                              + ["all: every format that writes a file, into the --output "
                                 "directory."])
        return super().get_help_record(ctx)


def journals_in(directory: Path) -> list[Path]:
    """The journals a directory stands for: its *.json files, else `RUN_ID/journal.json` one
    level down (the layout `chaos run` writes), sorted, with a note of how many were found."""
    listed = sorted(directory.glob("*.json"))
    if listed:
        return listed
    nested = sorted(directory.glob("*/journal.json"))
    if nested:
        click.echo(f"chaos: {len(nested)} journal{'s' if len(nested) != 1 else ''} found in "
                   f"{directory}/*/journal.json", err=True)
    return nested


@click.command()
@click.argument("journals", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", cls=FormatOption, type=FormatChoice(), default="text",
              show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Write here instead of standard output (a directory for --format all).")
@click.pass_context
def report(ctx: click.Context, journals: tuple[Path, ...], fmt: str,
           output: Path | None) -> None:
    """Render JOURNAL files (journal.json of `chaos run`, gameday.json of `chaos gameday run`);
    a directory stands for the *.json files in it (the `--journal` files of several runs, as an
    Argo export's report step passes them) or, when it has none, for the RUN_ID/journal.json
    files one level down (a runs directory of `chaos run`)."""
    from chaos.reports import bundle, collection
    from chaos.reports.registry import Placement

    reporters = FormatChoice().registry(ctx)
    listed = [p for path in journals for p in (journals_in(path) if path.is_dir() else [path])]
    if not listed:
        raise UsageError(f"no journal in {', '.join(str(p) for p in journals)}",
                         hint="pass journal files, or a directory holding some (*.json or "
                              "RUN_ID/journal.json)")
    journals = tuple(listed)
    try:
        loaded = collection.load(journals)
    except ValueError as exc:
        raise UsageError(str(exc), hint="pass a journal.json written by `chaos run` or a "
                                        "gameday.json written by `chaos gameday run`") from None
    if fmt == "all":
        if output is None:
            raise UsageError("--format all writes several files", hint="add --output DIR")
        if output.exists() and not output.is_dir():
            raise UsageError(f"{output} is a file; --format all writes a directory of reports",
                             hint="pass a directory (it is created if needed)")
        try:
            written = bundle.write(loaded, output, reporters.with_files(), reporters=reporters)
        except OSError as exc:
            raise UsageError(f"cannot write the reports into {output}: {exc.strerror or exc}",
                             hint="pass a directory you can write to") from None
        for name in written.values():
            click.echo(str(output / name))
        return
    reporter = reporters.get(fmt)
    assert reporter is not None  # FormatChoice let only registered names through
    rendered = reporter.render(loaded, Placement((output or Path("x")).resolve().parent))
    if not isinstance(rendered, str | bytes):
        raise UsageError(f"--format {fmt} writes several files",
                         hint="use --format all --output DIR")
    _emit(rendered, output)


def _emit(rendered: str | bytes, output: Path | None) -> None:
    if output:
        try:  # `-o reports/chaos.xml` in CI: the directory may not exist yet
            output.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(rendered, bytes):
                output.write_bytes(rendered)
            else:
                output.write_text(rendered, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}",
                             hint="pass a file path you can write to") from None
    else:
        click.echo(rendered)
