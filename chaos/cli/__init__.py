"""The `chaos` command. Thin: parse, call the layers below, print, exit.

Subcommands are imported only when invoked, so `chaos --help` and `chaos validate` stay fast and
never import the Kubernetes client or chaoslib. `ChaosError` is caught once, here: the user sees
what went wrong and what to do, never a traceback (`--debug` shows them).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from chaos import __version__
from chaos.errors import EXIT_CODE_HELP, ChaosError, ExitCode

COMMANDS = {
    "run": ("chaos.cli.run:run", "Run experiments: check the hypothesis, inject, revert, record."),
    "validate": ("chaos.cli.validate:validate", "Check experiment files; report every problem."),
    "inject": ("chaos.cli.inject:inject", "Inject one fault now, in the foreground."),
    "status": ("chaos.cli.ledger:status", "List active injections (all runs)."),
    "stop": ("chaos.cli.ledger:stop", "Revert active injections by id or run, or all."),
    "recover": ("chaos.cli.ledger:recover", "Revert everything left open by crashed runs."),
    "exporter": ("chaos.cli.ledger:exporter", "Serve the ledger's gauges (faults left open) "
                                              "to Prometheus."),
    "faults": ("chaos.cli.catalogue:faults", "List the fault catalogue."),
    "schema": ("chaos.cli.catalogue:schema", "Print the JSON Schema of experiment files."),
    "report": ("chaos.cli.report:report", "Render journals again (text, HTML, Markdown, JUnit, post-mortems)."),
    "proxy": ("chaos.cli.proxy:proxy", "Run a TCP fault proxy in the foreground, live view."),
    "traffic-worker": ("chaos.cli.traffic_worker:traffic_worker",
                       "Send a share of a run's traffic from this host (remote workers)."),
    "gameday": ("chaos.cli.gameday:gameday", "Run, schedule or export game days."),
    "convert": ("chaos.cli.convert:convert", "Convert a Chaos Toolkit experiment to our format."),
    "init": ("chaos.cli.init:init", "Write a new, commented experiment or game day, validated."),
    "completion": ("chaos.cli.completion:completion", "Print the shell completion script."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, _, attr = COMMANDS[name][0].partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])


@click.group(cls=LazyGroup, epilog=EXIT_CODE_HELP.replace("\n", "\n\n\b\n", 1),
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chaos")
@click.option("--debug", is_flag=True, help="Show debug logs and tracebacks.")
@click.option("--no-color", "--no-colour", is_flag=True, expose_value=False, is_eager=True,
              callback=lambda ctx, param, value: _no_colour(value),
              help="No colour, even on a terminal (also: NO_COLOR=1).")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Chaos engineering experiments with SLO hypotheses and crash-safe rollback.

    \b
    Quickstart:  chaos run experiments/quickstart.yaml
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if debug or ctx.invoked_subcommand not in ("validate", "schema", "faults"):
        import logging  # not for the quick commands: it costs more than validating a file

        logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                            format="chaos: %(levelname)s: %(message)s")


def _no_colour(value: bool) -> None:
    if value:  # chaos.cli.colour only then: `chaos --help` does not pay for it
        from chaos.cli.colour import switch_off

        switch_off()


def main(argv: list[str] | None = None) -> Any:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        return cli.main(args=argv, prog_name="chaos", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.INVALID)
    except ChaosError as exc:
        if debug:
            import logging

            logging.exception("details")
        click.echo(f"chaos: error: {exc}", err=True)
        if exc.hint:
            click.echo(f"  what to do: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except Exception as exc:  # a bug in chaos: say so plainly; --debug shows the traceback
        if debug:
            import logging

            logging.exception("internal error")
        click.echo(f"chaos: internal error (a bug in chaos, not in your input): "
                   f"{type(exc).__name__}: {exc}", err=True)
        click.echo("  what to do: rerun with --debug and report the traceback; "
                   "`chaos status` shows whether anything is still injected", err=True)
        sys.exit(ExitCode.INVALID)
