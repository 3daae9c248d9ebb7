"""The loader never crashes: any text gives an Experiment or an ExperimentInvalid, nothing else.

Three generators, from blind to informed: arbitrary text (the YAML layer), random YAML trees
built from the format's own keys and plausible values (the schema and the second-step checks),
and mutations of the real quickstart experiment (almost-valid files, where most bugs hide).
Any other exception is a bug in chaos.model. Runs are derandomized, so the suite never flakes;
raise CHAOS_FUZZ_EXAMPLES locally to search longer with fresh randomness.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.errors import ExperimentInvalid
from chaos.model.experiment import Experiment
from chaos.model.loader import load_text
from chaos.model.schema import Field, List, Map, Obj, OneOf, Schema
from chaos.model.sections import experiment_schema
from chaos.model.source import SourceText
from chaos.runner.load import vocabulary
from tests.conftest import EXPERIMENTS

VOCAB = vocabulary()
QUICKSTART = (EXPERIMENTS / "quickstart.yaml").read_text()
EXAMPLES = int(os.environ.get("CHAOS_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXAMPLES or 200, deadline=None, derandomize=not EXAMPLES, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FILE_LEVEL = ("file is empty", "file is larger than", "more problems")


def _keys(schema: Schema, found: set[str]) -> set[str]:
    """Every field name the format declares, at any depth: the fuzzer's vocabulary."""
    if isinstance(schema, Obj):
        for key, spec in schema.fields.items():
            found.add(key)
            _keys(spec.schema if isinstance(spec, Field) else spec, found)
    elif isinstance(schema, OneOf):
        found.update(schema.variants)
        _keys(schema.common, found)
        for variant in schema.variants.values():
            _keys(variant, found)
    elif isinstance(schema, List):
        _keys(schema.item, found)
    elif isinstance(schema, Map):
        _keys(schema.value, found)
    return found


KEYS = sorted(_keys(experiment_schema(VOCAB), set()) | _keys(VOCAB.probes, set())
              | set(VOCAB.targets) | {"count", "percent"}
              | {k for shape in VOCAB.faults.values() for k in shape.params.fields})
WORDS = [
    "30s", "250ms", "1h30m", "0s", "-5s", "30", "fast", "99%", "150%", "50", "100%", "200/s",
    *VOCAB.faults, "network.latency", "demo", "home", "KILL", "SIGTERM", "TERM",
    "home >= 99%", "home.latency.p95 < 1s", "all >= 50%", "demo => 1%", "home.latency.p0 < 1s",
    "${port}", "${undefined_var}", "${python}", "${x:-1s}", "http://127.0.0.1:1/", "127.0.0.1:9",
    "python app.py", "", "yes", "no", "null", "~", "0x10", "1e400", ".nan", "2024-01-01", "=",
    "<<", "\0", "é", "\ud800",
]
SCALARS = st.one_of(
    st.sampled_from(WORDS), st.integers(), st.floats(), st.booleans(), st.none(),
    st.text(max_size=20),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=6),
    max_leaves=24,
)
YAMLISH = st.text(alphabet=st.sampled_from(list(":-[]{}#&*!|>'\"%@`,?\n\t abc019$.<=~")),
                  max_size=200)


def load(text: str, variables: dict[str, str] | None = None) -> Experiment | None:
    """The property: an Experiment, or ExperimentInvalid whose every problem reads well."""
    try:
        experiment = load_text(SourceText("fuzz.yaml", text), VOCAB, variables or {})
    except ExperimentInvalid as exc:
        assert exc.problems
        lines = len(re.split("\r\n|\r|\n", text)) + 1  # the end of the text may be "next line"
        for problem in exc.problems:
            if problem.location is None:
                assert any(f in problem.message for f in FILE_LEVEL) or problem.path == "", problem
            else:
                assert 1 <= problem.location.line <= lines, problem
            assert problem.message
        str(exc).encode("utf-8", "backslashreplace")
        return None
    for fault in experiment.faults:
        assert math.isfinite(fault.duration) and fault.duration >= 0
        assert math.isfinite(fault.start) and fault.start >= 0
        assert fault.end <= experiment.limits.max_duration
    return experiment


def dump(tree: Any) -> str:
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text_never_crashes_the_loader(text: str) -> None:
    load(text)


@FUZZ
@given(YAMLISH)
def test_yaml_punctuation_soup_never_crashes_the_loader(text: str) -> None:
    load(text)


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), TREES, max_size=8))
def test_random_trees_of_the_formats_keys_never_crash_the_loader(tree: dict[str, Any]) -> None:
    load(dump({"title": "fuzz", **tree}), {"port": "18089"})


def _paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a parsed document a mutation can hit."""
    found = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            found += _paths(value, (*prefix, i))
    return found


def _mutate(tree: Any, path: tuple[Any, ...], how: str, value: Any, key: str) -> Any:
    """A copy of `tree` with one change at `path`: replace, delete, add a key, or duplicate."""
    if not path:
        if how == "add" and isinstance(tree, dict):
            return {**tree, key: value}
        if how == "duplicate" and isinstance(tree, list):
            return tree + tree[:1]
        return value if how == "replace" else tree
    head, rest = path[0], path[1:]
    if isinstance(tree, dict):
        copy = dict(tree)
        if how == "delete" and not rest:
            del copy[head]
            return copy
        copy[head] = _mutate(tree[head], rest, how, value, key)
        return copy
    copy = list(tree)
    if how == "delete" and not rest:
        del copy[head]
        return copy
    copy[head] = _mutate(tree[head], rest, how, value, key)
    return copy


@FUZZ
@given(st.data())
def test_mutations_of_the_quickstart_never_crash_the_loader(data: st.DataObject) -> None:
    tree = yaml.safe_load(QUICKSTART)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(tree)))
        how = data.draw(st.sampled_from(["replace", "delete", "add", "duplicate"]))
        tree = _mutate(tree, path, how, data.draw(TREES), data.draw(st.sampled_from(KEYS)))
    load(dump(tree))


@FUZZ
@given(st.data())
def test_edits_of_the_quickstart_text_never_crash_the_loader(data: st.DataObject) -> None:
    text = QUICKSTART
    for _ in range(data.draw(st.integers(1, 4))):
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, min(len(text), start + 40)))
        text = text[:start] + data.draw(YAMLISH | st.sampled_from(WORDS)) + text[end:]
    load(text)


def test_the_quickstart_itself_loads() -> None:
    experiment = load(QUICKSTART)
    assert experiment is not None and experiment.faults
