"""The report formats: one registry of reporters, like the fault and adapter registries.

A reporter turns a collection of journals into one report: `name` is its `--format`, `filename`
the file it writes into a report directory (`chaos report --format all`, a game day's
directory; empty for standard-output-only formats), `render(collection, place)` the text or
bytes. The built-ins are in chaos.reports.builtin; third parties come through the
`chaos.reporters` entry-point group, whose callables receive the registry and add to it.
Reporters are verified when they register, so a broken one fails at start-up, not halfway
through writing a game day's reports.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from chaos.faults.registry import PluginEntryPoint, load_plugins
from chaos.reports.collection import Collection

PLUGIN_GROUP = "chaos.reporters"
RESERVED = ("all",)  # `--format all`: every reporter with a file
_NAME = re.compile(r"[a-z][a-z0-9_-]*")


@dataclass(frozen=True)
class Placement:
    """Where a report goes, for reports that link to files beside them."""

    directory: Path  # where the report is written (relative links start here)
    beside: tuple[str, ...] = ()  # the formats written into the same directory
    bundle: bool = False  # a report directory (every file) rather than one output


@dataclass(frozen=True)
class Output:
    """One of several files a reporter writes into a report directory."""

    key: str  # how a game day's `reports` lists it, e.g. postmortem-02
    filename: str
    content: str | bytes


Rendered = str | bytes | Sequence[Output]


class Reporter(Protocol):
    """A report format. `render` returns the report, or with `place.bundle` several files."""

    @property
    def name(self) -> str: ...  # its --format

    @property
    def filename(self) -> str: ...  # in a report directory; "" for standard output only

    @property
    def summary(self) -> str: ...  # one line, for docs and listings

    def render(self, collection: Collection, place: Placement) -> Rendered: ...


class ReporterRegistry:
    def __init__(self) -> None:
        self._by_name: dict[str, Reporter] = {}

    def add(self, reporter: Reporter) -> Reporter:
        name = getattr(reporter, "name", None)
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name in RESERVED:
            raise ValueError(f"reporter name {name!r} must be a lowercase word other than "
                             f"{', '.join(RESERVED)}")
        if name in self._by_name:
            raise ValueError(f"report format {name!r} is already registered")
        filename = getattr(reporter, "filename", None)
        if not isinstance(filename, str) or "/" in filename or filename.startswith("."):
            raise ValueError(f"{name}: filename must be a plain file name, or empty for "
                             "standard output only")
        if not isinstance(getattr(reporter, "summary", None), str) or not reporter.summary:
            raise ValueError(f"{name}: needs a one-line summary")
        render = getattr(reporter, "render", None)
        if not callable(render) or inspect.iscoroutinefunction(render):
            raise TypeError(f"{name}.render must be a plain (not async) method")
        try:
            inspect.signature(render).bind(None, None)
        except TypeError:
            raise TypeError(f"{name}.render must take (collection, place)") from None
        self._by_name[name] = reporter
        return reporter

    def get(self, name: str) -> Reporter | None:
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[Reporter]:
        return iter(self._by_name.values())

    def names(self) -> list[str]:
        return list(self._by_name)

    def with_files(self) -> tuple[str, ...]:
        """The formats that write a file: what `--format all` writes."""
        return tuple(r.name for r in self if r.filename)


def new_registry(*, plugins: bool = False,
                 entries: Iterable[PluginEntryPoint] | None = None) -> ReporterRegistry:
    """A fresh registry of the built-in formats; with `plugins`, the `chaos.reporters` entry
    points too (`entries` replaces the installed ones)."""
    from chaos.reports import builtin

    registry = ReporterRegistry()
    builtin.register(registry)
    if plugins:  # each entry point is a callable that receives the registry
        load_plugins(PLUGIN_GROUP, lambda plugin: plugin(registry), entries)
    return registry


@lru_cache(maxsize=1)
def default_registry() -> ReporterRegistry:
    """The process-wide registry: built-ins and installed plugins, loaded once."""
    return new_registry(plugins=True)
