"""Options shared by several commands, as decorators."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def parse_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    variables = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--var")
        variables[name] = value
    return variables


def variables(func: F) -> F:
    return click.option("--var", "vars_", multiple=True, metavar="NAME=VALUE",
                        help="Value for ${NAME} in experiment files (repeatable); "
                             "overrides the file's vars and the environment.")(func)


def state_dir(func: F) -> F:
    return click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
                        envvar="CHAOS_STATE_DIR", show_envvar=True,
                        help="Where the ledger and locks live "
                             "(default: $XDG_STATE_HOME/chaos).")(func)
