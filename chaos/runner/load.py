"""Loading experiments with the whole vocabulary: fault catalogue, target kinds, probes, checks."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from chaos.faults import FaultRegistry, default_registry
from chaos.model.experiment import Experiment, Vocabulary
from chaos.model.loader import load_file
from chaos.slo.checks import parse_check
from chaos.slo.probes import probe_schema

EXPERIMENT_SUFFIXES = (".yaml", ".yml")


def vocabulary(faults: FaultRegistry | None = None) -> Vocabulary:
    registry = faults or default_registry()
    return Vocabulary(faults=registry.shapes(), targets=registry.target_kinds,
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
