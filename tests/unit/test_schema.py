"""The schema language: one declaration checks YAML nodes and publishes a JSON Schema for editors.

Checked here: every problem in a walk is collected with its location and path (never just the
first), typos get a suggestion, YAML's surprises (duplicate keys, merge keys, `yes`, odd tags,
unbounded documents) are refused clearly, and `chaos schema` is a valid Draft 2020-12 schema that
accepts the shipped experiments and rejects the mistakes an editor can spot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from chaos.errors import ExperimentInvalid
from chaos.model import source
from chaos.model.schema import (
    INVALID,
    MAX_PROBLEMS,
    Argv,
    Bool,
    Context,
    Duration,
    Field,
    Int,
    List,
    Map,
    Obj,
    OneOf,
    Percent,
    Str,
)
from tests.conftest import EXPERIMENTS, ROOT, run_chaos

FIXTURES = ROOT / "tests" / "fixtures" / "invalid"

SERVICE = Obj({
    "name": Field(Str("name", pattern=r"[a-z]+"), required=True),
    "run": Field(Argv(), required=True),
    "every": Duration("interval", "1s", min=0.05),
    "share": Percent("share"),
    "replicas": Int("count", min=1, max=9),
    "debug": Bool("debug", False),
    "env": Map(Str()),
    "probe": OneOf({"http": Str("url"), "tcp": Str("address")}, common={"name": Str()}),
})


def check(schema: Any, text: str, variables: dict[str, str] | None = None) -> tuple[Any, Context]:
    ctx = Context("f.yaml", variables or {})
    node = source.compose(source.SourceText("f.yaml", text))
    return schema.check(node, "", ctx), ctx


def messages(ctx: Context) -> list[str]:
    return [str(p) for p in ctx.sorted_problems()]


def test_a_valid_mapping_becomes_converted_values_with_defaults() -> None:
    value, ctx = check(SERVICE, "name: web\nrun: [python, app.py]\nshare: 50%\nprobe: {tcp: x:1}\n")
    assert not ctx.problems
    assert value["every"] == 1.0 and value["share"] == 0.5 and value["debug"] is False
    assert value["run"] == ("python", "app.py")
    assert value["probe"] == {"kind": "tcp", "spec": "x:1", "name": None}


def test_every_problem_is_collected_with_location_and_path() -> None:
    text = ("name: Web\nrun: python app.py\nevery: 10\nshare: 150%\nreplicas: 0\n"
            "debug: maybe\nprobe: {http: a, tcp: b}\nextra: 1\n")
    value, ctx = check(SERVICE, text)
    assert value is INVALID
    assert messages(ctx) == [
        "f.yaml:1:7: name: expected a string matching [a-z]+, got 'Web'",
        "f.yaml:2:6: run: expected the command as a list, not a string (chaos never runs a "
        "shell): write [python, app.py]",
        "f.yaml:3:8: every: expected a duration like 200ms, 5s or 2m, got 10: add a unit, "
        "e.g. 10s or 10ms",
        "f.yaml:4:8: share: expected a percentage between 0% and 100%, got '150%'",
        "f.yaml:5:11: replicas: expected an integer from 1 to 9, got 0",
        "f.yaml:6:8: debug: expected true or false, got 'maybe'",
        "f.yaml:7:18: probe: give only one of: http, tcp (found http and tcp)",
        "f.yaml:8:1: extra: unknown field (expected one of: name, run, every, share, replicas, "
        "debug, env, probe)",
    ]


def test_a_typo_gets_a_suggestion() -> None:
    _, ctx = check(SERVICE, "name: web\nrun: [a]\nreplcas: 2\nprobe: {htp: x}\n")
    assert "replcas: unknown field; did you mean replicas?" in messages(ctx)[0]
    assert "probe.htp: unknown kind; did you mean http?" in messages(ctx)[1]


def test_missing_required_fields_are_reported_where_the_mapping_starts() -> None:
    _, ctx = check(SERVICE, "\n\nevery: 1s\n")
    assert messages(ctx) == ["f.yaml:3:1: name: required field is missing",
                             "f.yaml:3:1: run: required field is missing"]


def test_duplicate_keys_name_both_lines_and_the_rest_is_still_checked() -> None:
    _, ctx = check(SERVICE, "name: web\nrun: [a]\nname: api\nevery: soon\n")
    assert messages(ctx) == [
        "f.yaml:3:1: name: duplicate key (first defined at line 1); keep one of them",
        "f.yaml:4:8: every: expected a duration like 200ms, 5s or 2m, got 'soon'",
    ]


@pytest.mark.parametrize(("text", "message"), [
    ("<<: {name: web}\nrun: [a]\n", "YAML merge keys (`<<`) are not supported"),
    ("? [a, b]\n: 1\nname: web\nrun: [a]\n", "keys must be plain strings, not lists or mappings"),
    ('name: web\nrun: [a]\n"\\ud800": 1\n', "a key contains an unpaired surrogate"),
    ("name: yes\nrun: [a]\n", "got yes, which YAML reads as true; quote it"),
    ("name: web\nrun: [a]\nreplicas: '3'\n", "got '3'; remove the quotes"),
    ('name: web\nrun: ["a\\0b"]\n', "the value contains a NUL character"),
    ('name: "\\ud800"\nrun: [a]\n', "the value contains an unpaired surrogate escape"),
    ("name: !!binary aGk=\nrun: [a]\n", "unsupported YAML tag !!binary; remove it"),
    ("name: !!python/object:os.system x\nrun: [a]\n", "unsupported YAML tag !!python/object"),
    ("name: !custom x\nrun: [a]\n", "unsupported YAML tag !custom"),
    ("name: web\nrun: [a]\nreplicas: !!int ''\n", "cannot read '' as !!int"),
    ("name: web\nrun: [a]\ndebug: !!bool maybe\n", "cannot read 'maybe' as !!bool"),
    ("name: web\nrun: 'tail -f log | grep x'\n", "uses shell syntax, so write [sh, -c,"),
    ("name: web\nrun: []\n", "expected at least 1 item(s)"),
    ("name: web\nrun: [a]\nenv: [A=1]\n", "env: expected a mapping, got a list"),
    ("name: web\nrun: [a]\nprobe: {name: x}\n", "probe: expected one of: http, tcp"),
    ("name: web\nrun: [a]\nprobe: tcp\n", "expected a mapping with one of: http, tcp, got 'tcp'"),
])
def test_yaml_surprises_are_refused_with_a_fix(text: str, message: str) -> None:
    value, ctx = check(SERVICE, text)
    assert value is INVALID
    assert any(message in m for m in messages(ctx)), messages(ctx)


def test_strings_keep_the_text_as_written() -> None:
    schema = Obj({"a": Str(), "b": Str(), "c": Str()})
    value, ctx = check(schema, "a: 0x10\nb: 1.50\nc: 2024-01-01\n")
    assert not ctx.problems
    assert value == {"a": "0x10", "b": "1.50", "c": "2024-01-01"}


def test_variables_are_substituted_and_missing_ones_say_how_to_set_them() -> None:
    schema = Obj({"port": Int(), "url": Str(), "wait": Duration()})
    value, ctx = check(schema, "port: ${port}\nurl: http://h:${port}/\nwait: ${wait:-2s}\n",
                       {"port": "8080"})
    assert value == {"port": 8080, "url": "http://h:8080/", "wait": 2.0}
    _, ctx = check(schema, "port: ${CHAOS_TEST_SURELY_UNSET}\n")
    assert messages(ctx) == ["f.yaml:1:7: port: variable ${CHAOS_TEST_SURELY_UNSET} is not set: "
                             "pass --var CHAOS_TEST_SURELY_UNSET=VALUE, export "
                             "CHAOS_TEST_SURELY_UNSET, or add it under vars"]


def test_a_flood_of_problems_is_capped_and_counted() -> None:
    text = "[" + ", ".join(["x"] * (MAX_PROBLEMS + 50)) + "]"
    _, ctx = check(List(Int()), text)
    problems = ctx.sorted_problems()
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1].message.startswith("... and 50 more problems")


def test_aliases_cannot_expand_past_the_node_budget() -> None:
    keys = ", ".join(f"k{i}: v" for i in range(1000))
    services = "\n".join(f"  s{i}: *big" for i in range(60))
    text = f"big: &big {{{keys}}}\nservices:\n{services}\n"
    _, ctx = check(Obj({"big": Map(Str()), "services": Map(Map(Str()))}), text)
    assert [p.message for p in ctx.problems][:1] == [
        "document is nested too deep or is too large (YAML aliases count every time they are used)"]
    assert len(ctx.problems) == 1


@pytest.mark.parametrize(("text", "message"), [
    ("a: " + "[" * 80 + "]" * 80, "nested more than 64 levels deep"),
    ("a: &a [x]\nb: [" + ", ".join(["*a"] * 65) + "]", "more than 64 YAML aliases"),
    ("a: 1\0", "character '\\x00' (U+0000) is not allowed"),
])
def test_documents_are_bounded_while_parsing(text: str, message: str) -> None:
    with pytest.raises(ExperimentInvalid) as caught:
        source.compose(source.SourceText("f.yaml", text))
    assert message in str(caught.value)


def test_a_self_referencing_alias_ends_at_the_depth_limit() -> None:
    _, ctx = check(Obj({"a": List(List(Str()))}), "a: &a [*a]\n")
    assert ctx.problems


# --- the published JSON Schema


@pytest.fixture(scope="module")
def published() -> dict[str, Any]:
    result = run_chaos("schema", timeout=60)
    assert result.returncode == 0, result.stderr
    schema: dict[str, Any] = json.loads(result.stdout)
    return schema


def test_chaos_schema_is_a_valid_draft_2020_12_schema(published: dict[str, Any]) -> None:
    assert published["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(published)


@pytest.mark.parametrize("path", sorted([*EXPERIMENTS.glob("*.yaml"),
                                         *EXPERIMENTS.glob("scenarios/*.yaml")]),
                         ids=lambda p: p.stem)
def test_the_schema_accepts_the_shipped_experiments(published: dict[str, Any], path: Path) -> None:
    jsonschema.Draft202012Validator(published).validate(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("name", [
    "duration-without-unit", "fault-key-typo", "missing-title", "shell-string-run",
    "two-readiness-checks", "percent-without-sign", "faults-as-mapping", "target-selector-typo",
    "interval-as-a-word", "status-not-a-list",
])
def test_the_schema_lets_editors_flag_common_mistakes(published: dict[str, Any],
                                                      name: str) -> None:
    document = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
    errors = list(jsonschema.Draft202012Validator(published).iter_errors(document))
    assert errors, f"{name} passes the JSON Schema"
