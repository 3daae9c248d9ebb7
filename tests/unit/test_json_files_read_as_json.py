"""A `.json` file is read by the JSON grammar into located nodes (chaos.model.json_nodes): every
JSON document gives the values Python's json module gives (numbers as numbers: `1e2` is 100.0,
not the text YAML made of it), any other text is a located JsonError, never another exception;
and each value's node says where it is."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.model import source
from chaos.model.json_nodes import JsonError, compose

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


def plain(node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return {plain(k): plain(v) for k, v in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [plain(n) for n in node.value]
    assert isinstance(node, yaml.ScalarNode)
    return source.scalar_value(node)


@FUZZ
@given(VALUES, st.sampled_from([None, 2, "\t"]), st.booleans())
def test_every_json_document_reads_as_pythons_json_reads_it(
        value: Any, indent: int | str | None, ascii_only: bool) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    node = compose(text, "f.json", 64)
    assert node is not None
    assert plain(node) == json.loads(text)


@FUZZ
@given(st.text(alphabet=st.sampled_from('{}[]",:\'/ \t\n0123456789.eE+-truefalsnNaI\\x'),
               max_size=40))
def test_any_text_is_a_document_or_a_located_error(text: str) -> None:
    try:
        compose(text, "f.json", 64)
    except JsonError as exc:
        assert 0 <= exc.position <= len(text)
    except RecursionError:  # pragma: no cover - the depth limit must prevent it
        pytest.fail("no depth limit")


@pytest.mark.parametrize(("text", "expected"), [
    ("1e2", 100.0), ("2e-1", 0.2), ("-0.5E+1", -5.0), ("10", 10), ("-0", 0),
    ('"1e2"', "1e2"), ("true", True), ("null", None), ('"\\u00e9\\t"', "é\t"),
])
def test_numbers_are_numbers_and_strings_are_strings(text: str, expected: Any) -> None:
    node = compose(text, "f.json", 64)
    assert isinstance(node, yaml.ScalarNode)
    found = source.scalar_value(node)
    assert found == expected and type(found) is type(expected)
    assert not (isinstance(found, float) and math.isnan(found))


def test_each_value_knows_its_line_and_column() -> None:
    node = compose('{\n\t"a": [1,\n\t\t"x"],\n  "b": {"c": 2e0}\n}', "f.json", 64)
    assert isinstance(node, yaml.MappingNode)
    (_, a), (b_key, b) = node.value
    assert [(n.start_mark.line + 1, n.start_mark.column + 1) for n in a.value] == [(2, 8), (3, 3)]
    assert (b_key.start_mark.line + 1, b_key.start_mark.column + 1) == (4, 3)
    assert (b.value[0][1].start_mark.line + 1, b.value[0][1].start_mark.column + 1) == (4, 14)


def test_nesting_is_bounded() -> None:
    with pytest.raises(JsonError, match="nested more than 64 levels"):
        compose("[" * 10_000, "f.json", 64)


def test_a_native_experiment_in_json_reads_as_its_yaml_does() -> None:
    """The same JSON path serves native experiments: the quickstart written as JSON (with tab
    indentation) loads to the same experiment; a trailing comma is located, not let through."""
    from chaos.errors import ExperimentInvalid
    from chaos.model.loader import load_text
    from chaos.model.source import SourceText
    from chaos.runner.load import vocabulary
    from tests.conftest import EXPERIMENTS

    text = (EXPERIMENTS / "quickstart.yaml").read_text()
    as_json = json.dumps(yaml.safe_load(text), indent="\t")
    vocab = vocabulary()
    from_yaml = load_text(SourceText(str(EXPERIMENTS / "quickstart.yaml"), text), vocab, {})
    from_json = load_text(SourceText(str(EXPERIMENTS / "quickstart.json"), as_json), vocab, {})
    def shape(exp: Any) -> Any:  # all but the locations
        return exp.title, exp.hypothesis.checks[0].text, [
            (f.name, f.type, dict(f.params), f.start, f.duration, f.target.kind,
             dict(f.target.selector)) for f in exp.faults]

    assert shape(from_json) == shape(from_yaml)
    broken = as_json.replace('"demo"\n\t]', '"demo",\n\t]')
    assert broken != as_json
    with pytest.raises(ExperimentInvalid) as refused:
        load_text(SourceText("broken.json", broken), vocab, {})
    (problem,) = refused.value.problems
    assert problem.location is not None and "trailing comma" in problem.message
    line = broken[:broken.index('"demo",\n\t]')].count("\n") + 1
    assert (problem.location.line, problem.location.column) == (line, 9)
