"""A small schema language: one declaration validates YAML nodes and emits JSON Schema.

Every field of the experiment format, and every fault's parameters, is declared once with these
types. `check(node)` converts a located YAML node into plain Python values (durations in seconds,
percents as fractions) and appends a Problem for every mistake, so a file reports all its problems
at once. `json_schema()` publishes the same declaration for editors (`chaos schema`).

A subtree is INVALID when any problem was reported while walking it; walks never stop early, so
one typo does not hide the next. `Obj.fields_of` and `List.items_of` give the partial result
(valid parts kept) to the loader's second step, which checks what needs sibling context.

This module holds the containers (List, Map, Obj, OneOf, Argv) and is where the whole language is
imported from; the walk they share (Context, Schema) is in chaos.model.walk and the scalar types
in chaos.model.scalars.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from chaos.model import source
from chaos.model.scalars import (
    VAR_PATTERN,
    Any_,
    Bool,
    Duration,
    Int,
    Percent,
    Rate,
    Regex,
    Scalar,
    Size,
    Str,
    Unit,
)
from chaos.model.walk import (
    INVALID,
    MAX_PROBLEMS,
    Context,
    Schema,
    join,
    kind_of,
    suggest,
    unreadable,
)
from chaos.units import shown

# The whole language is imported from here (by plugins too, see docs/faults.md), wherever a
# name is defined.
__all__ = [
    "INVALID", "MAX_PROBLEMS", "VAR_PATTERN", "Any_", "Argv", "Bool", "Context", "Duration",
    "Field", "Int", "List", "Map", "Obj", "OneOf", "Percent", "Rate", "Regex", "Scalar", "Schema",
    "Size", "Str", "Unit", "join", "kind_of", "scalar_as", "suggest",
]


class List(Schema):
    def __init__(self, item: Schema, doc: str = "", *, min_items: int = 0,
                 default: Any = None) -> None:
        self.item, self.doc, self.min_items, self.default = item, doc, min_items, default

    def items_of(self, node: yaml.Node, path: str, ctx: Context, depth: int = 0) -> Any:
        """Every item checked; invalid ones are INVALID in the list (INVALID if not a list)."""
        if not isinstance(node, yaml.SequenceNode):
            one = isinstance(node, yaml.ScalarNode) and node.value and len(node.value) <= 40
            hint = f"; for one item write [{node.value}]" if one else ""
            return ctx.problem(node, path, f"expected a list, got {kind_of(node)}{hint}")
        if len(node.value) < self.min_items:
            return ctx.problem(node, path, f"expected at least {self.min_items} item(s)")
        return [self.item.check(n, join(path, i), ctx, depth + 1) for i, n in enumerate(node.value)]

    def _check(self, node: yaml.Node, path: str, ctx: Context, depth: int) -> Any:
        items = self.items_of(node, path, ctx, depth)
        return items if items is INVALID else tuple(items)

    def describe(self) -> str:
        return f"list of {self.item.describe()}"

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": self.item.json_schema()}
        if self.min_items:
            schema["minItems"] = self.min_items
        return self._with_doc(schema)


def _mapping_items(
    node: yaml.MappingNode, path: str, ctx: Context
) -> list[tuple[str, yaml.Node, yaml.Node]]:
    """Keys as strings; duplicate or non-string keys are reported and left out."""
    seen: dict[str, yaml.Node] = {}
    items: list[tuple[str, yaml.Node, yaml.Node]] = []
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:merge":
            ctx.problem(key_node, path, "YAML merge keys (`<<`) are not supported: write the "
                                        "fields out, so the file reads the way it runs")
            continue
        if not isinstance(key_node, yaml.ScalarNode):
            ctx.problem(key_node, path, "keys must be plain strings, not lists or mappings")
            continue
        key = str(key_node.value)
        if why := unreadable(key):
            ctx.problem(key_node, path, f"a key {why}")
            continue
        if key in seen:
            first = source.location(ctx.file, seen[key])
            ctx.problem(key_node, join(path, key), f"duplicate key (first defined at line "
                                                   f"{first.line}); keep one of them")
            continue
        seen[key] = key_node
        items.append((key, key_node, value_node))
    return items


class Map(Schema):
    """Free-form string keys, each value checked by `value`."""

    def __init__(self, value: Schema, doc: str = "", *, key_pattern: str | None = None) -> None:
        self.value, self.doc = value, doc
        self.key_pattern = key_pattern

    def _check(self, node: yaml.Node, path: str, ctx: Context, depth: int) -> Any:
        if not isinstance(node, yaml.MappingNode):
            return ctx.problem(node, path, f"expected a mapping, got {kind_of(node)}")
        result = {}
        for key, key_node, value_node in _mapping_items(node, path, ctx):
            if self.key_pattern and not re.fullmatch(self.key_pattern, key):
                ctx.problem(key_node, join(path, key), f"key must match {self.key_pattern}")
                continue
            result[key] = self.value.check(value_node, join(path, key), ctx, depth + 1)
        return result

    def describe(self) -> str:
        return f"mapping of {self.value.describe()}"

    def json_schema(self) -> dict[str, Any]:
        schema = {"type": "object", "additionalProperties": self.value.json_schema()}
        if self.key_pattern:
            schema["propertyNames"] = {"pattern": f"^(?:{self.key_pattern})$"}
        return self._with_doc(schema)


@dataclass(frozen=True)
class Field:
    schema: Schema
    required: bool = False
    # a target selector's field may name the `chaos inject` flag that sets it (`pid` for
    # --pid) and that flag's help (default: the schema's doc); the JSON Schema ignores both
    flag: str = ""
    help: str = ""


def scalar_as(key: str) -> Callable[[yaml.Node], yaml.Node | None]:
    """A shorthand for Obj: a plain scalar stands for `{key: scalar}` (`{service: demo}`)."""

    def expand(node: yaml.Node) -> yaml.Node | None:
        if not isinstance(node, yaml.ScalarNode):
            return None
        name = yaml.ScalarNode("tag:yaml.org,2002:str", key, node.start_mark, node.end_mark)
        return yaml.MappingNode("tag:yaml.org,2002:map", [(name, node)], node.start_mark,
                                node.end_mark)

    return expand


class Obj(Schema):
    """A mapping with declared fields; unknown keys are errors (a typo must not pass silently).

    `shorthand` turns a scalar into the mapping it abbreviates (`{service: demo}` for
    `{service: {name: demo}}`); `shorthand_json` is the scalar's JSON Schema.
    """

    def __init__(self, fields: Mapping[str, Schema | Field], doc: str = "",
                 shorthand: Callable[[yaml.Node], yaml.Node | None] | None = None,
                 shorthand_json: dict[str, Any] | None = None) -> None:
        self.fields = {k: v if isinstance(v, Field) else Field(v) for k, v in fields.items()}
        self.doc = doc
        self.shorthand = shorthand
        self.shorthand_json = shorthand_json or {"type": "string"}

    def fields_of(self, node: yaml.Node, path: str, ctx: Context, depth: int = 0,
                  later: frozenset[str] = frozenset()) -> Any:
        """Every field checked; a dict where invalid fields are INVALID (INVALID if no mapping).

        Fields named in `later` are returned as their YAML nodes (None when absent): the caller
        checks them with context this schema does not have (declared services, probe names).
        """
        if self.shorthand and not isinstance(node, yaml.MappingNode):
            node = self.shorthand(node) or node
        if not isinstance(node, yaml.MappingNode):
            return ctx.problem(node, path, f"expected a mapping, got {kind_of(node)}")
        result: dict[str, Any] = {}
        for key, key_node, value_node in _mapping_items(node, path, ctx):
            spec = self.fields.get(key)
            if spec is None:
                names = list(self.fields)
                ctx.problem(key_node, join(path, key), f"unknown field{suggest(key, names)} "
                                                       f"(expected one of: {', '.join(names)})")
                continue
            if key in later:
                result[key] = value_node
                continue
            result[key] = spec.schema.check(value_node, join(path, key), ctx, depth + 1)
        for key, spec in self.fields.items():
            if key not in result:
                if key in later and not spec.required:
                    result[key] = None
                elif spec.required:
                    result[key] = ctx.problem(node, join(path, key), "required field is missing")
                else:
                    result[key] = spec.schema.default_value()
        return result

    def _check(self, node: yaml.Node, path: str, ctx: Context, depth: int) -> Any:
        return self.fields_of(node, path, ctx, depth)

    def describe(self) -> str:
        return "mapping"

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {k: f.schema.json_schema() for k, f in self.fields.items()},
            "additionalProperties": False,
        }
        required = [k for k, f in self.fields.items() if f.required]
        if required:
            schema["required"] = required
        if self.shorthand:
            schema = {"anyOf": [schema, dict(self.shorthand_json)]}
        return self._with_doc(schema)


class OneOf(Schema):
    """A mapping with exactly one key naming the variant: `{http: {...}}` or `{tcp: {...}}`.

    Extra keys named in `common` are allowed beside the variant key (e.g. a probe's `name`).
    """

    def __init__(self, variants: Mapping[str, Schema], doc: str = "",
                 common: Mapping[str, Schema | Field] | None = None) -> None:
        self.variants = variants  # not copied: a lazy mapping loads plugins only on a miss
        self.common = Obj(common or {})
        self.doc = doc

    def _check(self, node: yaml.Node, path: str, ctx: Context, depth: int) -> Any:
        if not isinstance(node, yaml.MappingNode):
            return ctx.problem(node, path, f"expected a mapping with one of: {self._names()}, "
                                           f"got {kind_of(node)}")
        items = _mapping_items(node, path, ctx)
        present = [item for item in items if item[0] in self.variants]
        if not present:
            return self._none_present(node, path, ctx, items)
        if len(present) > 1:
            found = " and ".join(k for k, _, _ in present)
            return ctx.problem(present[1][1], path, f"give only one of: {self._names()} "
                                                    f"(found {found})")
        kind, _, value_node = present[0]
        rest = yaml.MappingNode(node.tag, [(k, v) for key, k, v in items if key != kind],
                                node.start_mark, node.end_mark)
        common = self.common.check(rest, path, ctx, depth)
        body = self.variants[kind].check(value_node, join(path, kind), ctx, depth + 1)
        if common is INVALID or body is INVALID:
            return INVALID
        return {"kind": kind, "spec": body, **common}

    def _none_present(self, node: yaml.MappingNode, path: str, ctx: Context,
                      items: list[tuple[str, yaml.Node, yaml.Node]]) -> Any:
        unknown = [(key, key_node) for key, key_node, _ in items if key not in self.common.fields]
        for key, key_node in unknown:
            hint = suggest(key, list(self.variants))
            ctx.problem(key_node, join(path, key),
                        f"unknown kind{hint} (expected one of: {self._names()})")
        if not unknown:
            ctx.problem(node, path, f"expected one of: {self._names()}")
        return INVALID

    def _names(self) -> str:
        return ", ".join(self.variants)

    def describe(self) -> str:
        return "one of " + self._names()

    def json_schema(self) -> dict[str, Any]:
        common = self.common.json_schema()["properties"]
        options = []
        for name, schema in self.variants.items():
            options.append({
                "type": "object",
                "properties": {name: schema.json_schema(), **common},
                "required": [name],
                "additionalProperties": False,
            })
        return self._with_doc({"oneOf": options})


class Argv(List):
    """A command as a list of arguments: never a shell string."""

    def __init__(self, doc: str = "") -> None:
        super().__init__(Str(), doc or "command and arguments as a list (no shell)", min_items=1)

    def _check(self, node: yaml.Node, path: str, ctx: Context, depth: int) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return ctx.problem(node, path, self._advice(str(node.value)))
        return super()._check(node, path, ctx, depth)

    @staticmethod
    def _advice(text: str) -> str:
        """Show the list the user meant; a pipeline cannot be one, so say how to ask for a shell."""
        head = "expected the command as a list, not a string (chaos never runs a shell): "
        if _SHELL_SYNTAX.search(text):
            return head + f"this one uses shell syntax, so write [sh, -c, {shown(text)}]"
        words = text.split()
        like = f"[{', '.join(words)}]" if 1 < len(words) <= 8 else "[python, -m, app]"
        return head + f"write {like}"


_SHELL_SYNTAX = re.compile(r"[|&;<>`]|\$\(")
