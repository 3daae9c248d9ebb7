"""Loading experiments with the whole vocabulary: fault catalogue, target kinds, probes, checks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

from chaos.faults import FaultRegistry, default_registry
from chaos.model.experiment import Experiment, Vocabulary
from chaos.model.loader import CHAOS_TOOLKIT_KEYS, load_file
from chaos.slo.checks import parse_check
from chaos.slo.probe_kinds import ProbeKinds
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


def vocabulary(faults: FaultRegistry | None = None,
               probes: ProbeKinds | None = None) -> Vocabulary:
    """The registries' view for the loader; plugin fault types and target kinds included."""
    if faults is not None:
        return Vocabulary(faults=faults.shapes(), targets=faults.target_kinds,
                          probes=probe_schema(probes), parse_check=parse_check)
    builtin = default_registry()
    return Vocabulary(
        faults=WithPlugins(builtin.shapes(), lambda: _with_plugins().shapes()),
        targets=WithPlugins(builtin.target_kinds, lambda: _with_plugins().target_kinds),
        probes=probe_schema(probes), parse_check=parse_check)


def load_experiment(path: str | os.PathLike[str], variables: Mapping[str, str] | None = None,
                    faults: FaultRegistry | None = None,
                    probes: ProbeKinds | None = None) -> Experiment:
    return load_file(path, vocabulary(faults, probes), variables)


def expand_paths(paths: list[str],
                 skipped: Callable[[str, str], None] | None = None) -> list[str]:
    """Files as given; directories give their *.yaml files and the *.json files that are Chaos
    Toolkit experiments, sorted, not recursing. `skipped(path, why)` hears of the other JSON."""
    found: list[str] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            found.append(raw)
            continue
        for p in sorted(path.iterdir(), key=lambda p: p.name):
            if not p.is_file():
                continue
            if p.suffix in EXPERIMENT_SUFFIXES:
                found.append(str(p))
            elif p.suffix == ".json":
                why = _not_an_experiment(p)
                if why is None:
                    found.append(str(p))
                elif skipped is not None:
                    skipped(str(p), why)
    return found


def _not_an_experiment(path: Path) -> str | None:
    """Why a JSON file in a directory is not run (None: it is a Chaos Toolkit experiment, or
    it does not parse, which its loader reports with the line)."""
    import json

    from chaos.errors import ExperimentInvalid
    from chaos.model.source import MAX_BYTES, read

    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if size > MAX_BYTES:  # never read whole: a 250 MB export is not an experiment
        return f"larger than {MAX_BYTES // 1024} KiB, so not an experiment file"
    try:
        data = json.loads(read(path).text)
    except ExperimentInvalid:
        return None  # its loader says what is wrong, where
    except ValueError:
        return None
    if isinstance(data, dict) and "chaoslib-version" in data:
        return "a Chaos Toolkit journal, not an experiment"
    if not isinstance(data, dict) or not CHAOS_TOOLKIT_KEYS & data.keys():
        return "not a Chaos Toolkit experiment (no method, steady-state-hypothesis or rollbacks)"
    return None
