"""Loading experiments with the whole vocabulary: fault catalogue, target kinds, probes, checks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

from chaos.faults import FaultRegistry, default_registry
from chaos.model.experiment import Experiment, Vocabulary
from chaos.model.loader import load_file
from chaos.slo.checks import parse_check
from chaos.slo.probe_schema import probe_schema

EXPERIMENT_SUFFIXES = (".yaml", ".yml")
V = TypeVar("V")


class WithPlugins(Mapping[str, V]):
    """Built-in entries at once; plugin entries only when a name is not built in.

    Looking up entry points (importlib.metadata, a scan of every installed package) costs more
    than validating a file, so `chaos validate` pays it only for files that use a plugin.
    """

    def __init__(self, builtin: Mapping[str, V], everything: Callable[[], Mapping[str, V]]):
        self._entries, self._everything = builtin, everything
        self._complete = False

    def _complete_it(self) -> None:
        if not self._complete:
            self._entries, self._complete = self._everything(), True

    def __getitem__(self, key: str) -> V:
        if key not in self._entries:
            self._complete_it()
        return self._entries[key]

    def __contains__(self, key: object) -> bool:
        if key not in self._entries:
            self._complete_it()
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        self._complete_it()
        return iter(self._entries)

    def __len__(self) -> int:
        self._complete_it()
        return len(self._entries)


def _with_plugins() -> FaultRegistry:
    from chaos.adapters.registry import default_registry as default_adapters

    return default_adapters().faults


def vocabulary(faults: FaultRegistry | None = None) -> Vocabulary:
    """The registries' view for the loader; plugin fault types and target kinds included."""
    if faults is not None:
        return Vocabulary(faults=faults.shapes(), targets=faults.target_kinds,
                          probes=probe_schema(), parse_check=parse_check)
    builtin = default_registry()
    return Vocabulary(
        faults=WithPlugins(builtin.shapes(), lambda: _with_plugins().shapes()),
        targets=WithPlugins(builtin.target_kinds, lambda: _with_plugins().target_kinds),
        probes=probe_schema(), parse_check=parse_check)


def load_experiment(path: str | os.PathLike[str], variables: Mapping[str, str] | None = None,
                    faults: FaultRegistry | None = None) -> Experiment:
    return load_file(path, vocabulary(faults), variables)


def expand_paths(paths: list[str]) -> list[str]:
    """Files as given; directories give their *.yaml files, sorted, not recursing."""
    found: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(str(p) for p in path.iterdir()
                            if p.suffix in EXPERIMENT_SUFFIXES and p.is_file())
        else:
            found.append(raw)
    return found
