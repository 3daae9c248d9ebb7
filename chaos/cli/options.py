"""Options shared by several commands, as decorators."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from chaos.faults import FaultRegistry

F = TypeVar("F", bound=Callable[..., Any])


def parse_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    variables = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--var")
        variables[name] = value
    return variables


def refuse_unused(variables: Mapping[str, str], uses: Iterable[frozenset[str] | None],
                  files: Sequence[str]) -> None:
    """A --var that no file refers to is a typo (`--var prot=1234`), not something to ignore
    silently: exit 2 with the closest name used. `uses` holds what each file refers to; None
    stands for a Chaos Toolkit experiment, whose activities may read any configuration key."""
    used: set[str] = set()
    for names in uses:
        if names is None:
            return
        used |= names
    unused = [name for name in variables if name not in used]
    if not unused:
        return
    from chaos.errors import UsageError
    from chaos.model.walk import suggest

    where = (f"{files[0]} never uses" if len(files) == 1 else
             f"none of the {len(files)} files" + (f" ({', '.join(files)})" if len(files) <= 3
                                                  else "") + " uses")
    lines = [f"--var {name}: {where} ${{{name}}}{suggest(name, sorted(used))}"
             for name in unused]
    raise UsageError("\n  ".join(lines),
                     hint="fix the name, or remove the --var; variables are used in files as "
                          "${NAME}, or declared under `vars:`")


def variables(func: F) -> F:
    return click.option("--var", "vars_", multiple=True, metavar="NAME=VALUE",
                        help="Value for ${NAME} in experiment files (repeatable); "
                             "overrides the file's vars and the environment.")(func)


def state_dir(func: F) -> F:
    return click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
                        envvar="CHAOS_STATE_DIR", show_envvar=True,
                        help="Where the ledger and locks live "
                             "(default: $XDG_STATE_HOME/chaos).")(func)


R = TypeVar("R")


def given(key: str, kind: type[R], ctx: click.Context | None = None) -> R | None:
    """The registry a command was given (`obj={key: registry}`, as tests pass a fresh one), or
    None: the callee then takes its process-wide default, as lazily as it always did."""
    ctx = ctx or click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    found = obj.get(key) if isinstance(obj, dict) else None
    return found if isinstance(found, kind) else None


def registry_of(key: str, kind: type[R], default: Callable[[], R],
                ctx: click.Context | None = None) -> R:
    """The registry a command was given, else the process-wide `default()`: commands never
    reach for a global directly."""
    found = given(key, kind, ctx)
    return found if found is not None else default()


def fault_catalogue(ctx: click.Context | None = None) -> FaultRegistry:
    """The fault types a command offers: the given registry, else the given adapters' (a test
    passes only those), else the built-ins and the `chaos.plugins` entry points. Called only
    by a command that needs the catalogue: looking entry points up would slow `chaos --help`."""
    from chaos.adapters.registry import AdapterRegistry, default_registry
    from chaos.faults import FaultRegistry

    return registry_of("faults", FaultRegistry, lambda: registry_of(
        "adapters", AdapterRegistry, default_registry, ctx).faults, ctx)


def run_registries(ctx: click.Context | None = None) -> dict[str, Any]:
    """What `run_experiment` is given: the adapters and probe kinds of `obj`, if any."""
    from chaos.adapters.registry import AdapterRegistry
    from chaos.slo.probe_kinds import ProbeKinds

    return {"adapters": given("adapters", AdapterRegistry, ctx),
            "probes": given("probes", ProbeKinds, ctx)}


def gameday_registries(ctx: click.Context | None = None) -> dict[str, Any]:
    """What a game day is given: the fault types and probe kinds its experiments are checked
    against and the report formats it may list and write (`obj`'s, else None: the defaults)."""
    from chaos.faults import FaultRegistry
    from chaos.reports.registry import ReporterRegistry
    from chaos.slo.probe_kinds import ProbeKinds

    return {"faults": given("faults", FaultRegistry, ctx),
            "probes": given("probes", ProbeKinds, ctx),
            "reporters": given("reporters", ReporterRegistry, ctx)}
