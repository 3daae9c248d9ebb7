"""`chaos completion bash|zsh|fish`: the shell script that completes `chaos` command lines.

Click's own completion machinery does the work (the script calls `chaos` back with
`_CHAOS_COMPLETE` set), so subcommands, fault types under `chaos inject`, their parameter flags
and file arguments are completed from the same registries the commands use, never from a list
written twice. What click cannot know — the injection ids `chaos stop` takes — comes from the
ledger, here.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from click.shell_completion import CompletionItem, get_completion_class

SHELLS = ("bash", "zsh", "fish")
INSTALL = {
    "bash": 'eval "$(chaos completion bash)"            # in ~/.bashrc',
    "zsh": 'eval "$(chaos completion zsh)"             # in ~/.zshrc',
    "fish": "chaos completion fish > ~/.config/fish/completions/chaos.fish",
}


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
    bash:  eval "$(chaos completion bash)"     (in ~/.bashrc)
    zsh:   eval "$(chaos completion zsh)"      (in ~/.zshrc)
    fish:  chaos completion fish > ~/.config/fish/completions/chaos.fish

    Completes subcommands, fault types and their parameter flags for `chaos inject`,
    experiment files, and the injection and run ids `chaos stop` takes.
    """
    from chaos.cli import cli

    cls = get_completion_class(shell)
    assert cls is not None  # click ships all three
    click.echo(cls(cli, {}, "chaos", "_CHAOS_COMPLETE").source())


def injection_ids(ctx: click.Context, param: click.Parameter,
                  incomplete: str) -> list[CompletionItem]:
    """Open injections (and their runs) from the ledger, for `chaos stop ID...`.

    Completion must never fail loudly in the middle of a command line: an unreadable ledger
    completes nothing."""
    from chaos.safety.ledger import Ledger

    given = ctx.params.get("state_dir") or os.environ.get("CHAOS_STATE_DIR")
    try:
        entries = Ledger(Path(given) if given else None).open_entries()
    except Exception:  # noqa: BLE001 - see the docstring
        return []
    items: dict[str, CompletionItem] = {}
    for e in entries:
        items.setdefault(e.id, CompletionItem(e.id, help=f"{e.fault} on {e.target}"))
        items.setdefault(e.run, CompletionItem(e.run, help="every injection of this run"))
    return [item for value, item in items.items() if value.startswith(incomplete)]
