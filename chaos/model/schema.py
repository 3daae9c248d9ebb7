"""A small schema language: one declaration validates YAML nodes and emits JSON Schema.

Every field of the experiment format, and every fault's parameters, is declared once with these
types. `check(node)` converts a located YAML node into plain Python values (durations in seconds,
percents as fractions) and appends a Problem for every mistake, so a file reports all its problems
at once. `json_schema()` publishes the same declaration for editors (`chaos schema`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from chaos.errors import Problem
from chaos.model import source
from chaos.units import parse_duration, parse_percent, parse_rate, parse_size

INVALID: Any = object()  # marks a value that had a problem; builders skip it


@dataclass
class Context:
    """Carries the file name, variables, the problem list and the node budget through a walk."""

    file: str
    variables: Mapping[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    missing_vars: list[str] = field(default_factory=list)
    nodes: int = 0

    def problem(self, node: yaml.Node | None, path: str, message: str) -> Any:
        loc = source.location(self.file, node) if node is not None else None
        self.problems.append(Problem(loc, path, message))
        return INVALID


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return repr(node.value) if node.value != "" else "nothing"


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Schema:
    doc: str = ""
    default: Any = None

    def check(self, node: yaml.Node, path: str, ctx: Context, depth: int = 0) -> Any:
        ctx.nodes += 1
        if depth > source.MAX_DEPTH or ctx.nodes > source.MAX_NODES:
            if ctx.nodes == source.MAX_NODES + 1 or depth == source.MAX_DEPTH + 1:
                return ctx.problem(node, path, "document is nested too deep or is too large")
            return INVALID
        return self._check(node, path, ctx, depth)

    def _check(self, node: yaml.Node, path: str, ctx: Context, depth: int) -> Any:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def default_value(self) -> Any:
        """The default as a converted value (declared defaults read like YAML: "3s")."""
        return self.default

    def describe(self) -> str:
        """Short type description for `chaos faults` and docs."""
        return type(self).__name__.lower()

    def _with_doc(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.doc:
            schema["description"] = self.doc
        if self.default is not None:
            schema["default"] = self.default
        return schema


class Scalar(Schema):
    """A scalar converted by `convert`, which raises ValueError with the expectation."""

    def __init__(self, doc: str = "", default: Any = None) -> None:
        self.doc, self.default = doc, default

    def _check(self, node: yaml.Node, path: str, ctx: Context, depth: int) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return ctx.problem(node, path, f"expected {self.expected()}, got {_kind(node)}")
        node = source.substitute(node, ctx.variables, ctx.missing_vars)
        if "${" in node.value and ctx.missing_vars:
            names = ", ".join(sorted(set(ctx.missing_vars)))
            ctx.missing_vars.clear()
            return ctx.problem(
                node, path, f"variable {names} is not set: pass --var {names.split(',')[0]}=VALUE"
            )
        try:
            return self.convert(source.scalar_value(node))
        except ValueError as exc:
            return ctx.problem(node, path, str(exc))

    def convert(self, value: object) -> Any:
        raise NotImplementedError

    def default_value(self) -> Any:
        return None if self.default is None else self.convert(self.default)

    def expected(self) -> str:
        return self.describe()


class Str(Scalar):
    def __init__(
        self, doc: str = "", default: Any = None, *, pattern: str | None = None,
        choices: tuple[str, ...] = (), min_length: int = 0,
    ) -> None:
        super().__init__(doc, default)
        self.pattern = re.compile(pattern) if pattern else None
        self.choices, self.min_length = choices, min_length

    def convert(self, value: object) -> str:
        if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
            raise ValueError(f"expected {self.expected()}, got {value!r}")
        text = str(value)
        if self.choices and text not in self.choices:
            raise ValueError(f"expected one of {', '.join(self.choices)}, got {text!r}")
        if self.pattern and not self.pattern.fullmatch(text):
            raise ValueError(f"expected {self.expected()}, got {text!r}")
        if len(text) < self.min_length:
            raise ValueError("expected a non-empty string")
        return text

    def expected(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return f"a string matching {self.pattern.pattern}" if self.pattern else "a string"

    def describe(self) -> str:
        return "|".join(self.choices) if self.choices else "string"

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.pattern:
            schema["pattern"] = f"^(?:{self.pattern.pattern})$"
        if self.min_length:
            schema["minLength"] = self.min_length
        return self._with_doc(schema)


class Int(Scalar):
    def __init__(
        self, doc: str = "", default: Any = None, *, min: int | None = None,
        max: int | None = None,
    ) -> None:
        super().__init__(doc, default)
        self.min, self.max = min, max

    def convert(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected {self.expected()}, got {value!r}")
        if (self.min is not None and value < self.min) or (
            self.max is not None and value > self.max
        ):
            raise ValueError(f"expected {self.expected()}, got {value}")
        return value

    def expected(self) -> str:
        if self.min is not None and self.max is not None:
            return f"an integer from {self.min} to {self.max}"
        if self.min is not None:
            return f"an integer >= {self.min}"
        return "an integer"

    def describe(self) -> str:
        return "integer"

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        if self.min is not None:
            schema["minimum"] = self.min
        if self.max is not None:
            schema["maximum"] = self.max
        return self._with_doc(schema)


class Bool(Scalar):
    def convert(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value

    def describe(self) -> str:
        return "boolean"

    def json_schema(self) -> dict[str, Any]:
        return self._with_doc({"type": "boolean"})


class Unit(Scalar):
    """A value with a unit, parsed by one of chaos.units' parsers."""

    def __init__(
        self, parser: Callable[[object], Any], name: str, example: str, doc: str = "",
        default: Any = None, *, min: float | None = None, max: float | None = None,
    ) -> None:
        super().__init__(doc, default)
        self.parser, self.name, self.example = parser, name, example
        self.min, self.max = min, max

    def convert(self, value: object) -> Any:
        parsed = self.parser(value)
        if self.min is not None and parsed < self.min:
            raise ValueError(f"expected a {self.name} of at least {self.bound(self.min)}, got {value!r}")
        if self.max is not None and parsed > self.max:
            raise ValueError(f"expected a {self.name} of at most {self.bound(self.max)}, got {value!r}")
        return parsed

    def bound(self, value: float) -> str:
        return self.default_text(value)

    def default_text(self, value: float) -> str:
        from chaos.units import format_duration, format_percent

        if self.parser is parse_duration:
            return format_duration(value)
        if self.parser is parse_percent:
            return format_percent(value)
        return str(value)

    def describe(self) -> str:
        return f"{self.name} (e.g. {self.example})"

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "examples": [self.example]}
        if self.parser is parse_size:
            schema = {"type": ["string", "integer"], "examples": [self.example]}
        return self._with_doc(schema)


def Duration(doc: str = "", default: Any = None, *, min: float | None = None,
             max: float | None = None) -> Unit:
    return Unit(parse_duration, "duration", "500ms", doc, default, min=min, max=max)


def Percent(doc: str = "", default: Any = None) -> Unit:
    return Unit(parse_percent, "percentage", "99.5%", doc, default)


def Size(doc: str = "", default: Any = None) -> Unit:
    return Unit(parse_size, "size", "512MiB", doc, default)


def Rate(doc: str = "", default: Any = None) -> Unit:
    return Unit(parse_rate, "rate", "200/s", doc, default)


class Any_(Scalar):
    """Any scalar, kept as YAML typed it."""

    def convert(self, value: object) -> Any:
        return value

    def describe(self) -> str:
        return "scalar"

    def json_schema(self) -> dict[str, Any]:
        return self._with_doc({"type": ["string", "number", "boolean", "null"]})


class List(Schema):
    def __init__(self, item: Schema, doc: str = "", *, min_items: int = 0,
                 default: Any = None) -> None:
        self.item, self.doc, self.min_items, self.default = item, doc, min_items, default

    def _check(self, node: yaml.Node, path: str, ctx: Context, depth: int) -> Any:
        if not isinstance(node, yaml.SequenceNode):
            return ctx.problem(node, path, f"expected a list, got {_kind(node)}")
        if len(node.value) < self.min_items:
            return ctx.problem(node, path, f"expected at least {self.min_items} item(s)")
        items = [self.item.check(n, join(path, i), ctx, depth + 1) for i, n in enumerate(node.value)]
        return INVALID if any(i is INVALID for i in items) else tuple(items)

    def describe(self) -> str:
        return f"list of {self.item.describe()}"

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": self.item.json_schema()}
        if self.min_items:
            schema["minItems"] = self.min_items
        return self._with_doc(schema)


def _mapping_items(
    node: yaml.MappingNode, path: str, ctx: Context
) -> list[tuple[str, yaml.Node, yaml.Node]] | None:
    """Keys as strings; duplicate or non-string keys are problems."""
    seen: dict[str, yaml.Node] = {}
    items = []
    ok = True
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            ctx.problem(key_node, path, "keys must be plain strings (no merge keys, no complex keys)")
            ok = False
            continue
        key = str(key_node.value)
        if key in seen:
            first = source.location(ctx.file, seen[key])
            ctx.problem(key_node, join(path, key), f"duplicate key (first defined at line {first.line})")
            ok = False
            continue
        seen[key] = key_node
        items.append((key, key_node, value_node))
    return items if ok else None


class Map(Schema):
    """Free-form string keys, each value checked by `value`."""

    def __init__(self, value: Schema, doc: str = "", *, key_pattern: str | None = None) -> None:
        self.value, self.doc = value, doc
        self.key_pattern = re.compile(key_pattern) if key_pattern else None

    def _check(self, node: yaml.Node, path: str, ctx: Context, depth: int) -> Any:
        if not isinstance(node, yaml.MappingNode):
            return ctx.problem(node, path, f"expected a mapping, got {_kind(node)}")
        items = _mapping_items(node, path, ctx)
        if items is None:
            return INVALID
        result = {}
        for key, key_node, value_node in items:
            if self.key_pattern and not self.key_pattern.fullmatch(key):
                ctx.problem(key_node, join(path, key), f"key must match {self.key_pattern.pattern}")
                result[key] = INVALID
                continue
            result[key] = self.value.check(value_node, join(path, key), ctx, depth + 1)
        return INVALID if INVALID in result.values() else result

    def describe(self) -> str:
        return f"mapping of {self.value.describe()}"

    def json_schema(self) -> dict[str, Any]:
        return self._with_doc({"type": "object", "additionalProperties": self.value.json_schema()})


@dataclass(frozen=True)
class Field:
    schema: Schema
    required: bool = False


class Obj(Schema):
    """A mapping with declared fields; unknown keys are errors (a typo must not pass silently)."""

    def __init__(self, fields: Mapping[str, Schema | Field], doc: str = "",
                 shorthand: Callable[[yaml.Node], yaml.Node | None] | None = None) -> None:
        self.fields = {k: v if isinstance(v, Field) else Field(v) for k, v in fields.items()}
        self.doc = doc
        self.shorthand = shorthand

    def _check(self, node: yaml.Node, path: str, ctx: Context, depth: int) -> Any:
        if self.shorthand and not isinstance(node, yaml.MappingNode):
            node = self.shorthand(node) or node
        if not isinstance(node, yaml.MappingNode):
            return ctx.problem(node, path, f"expected a mapping, got {_kind(node)}")
        items = _mapping_items(node, path, ctx)
        if items is None:
            return INVALID
        result: dict[str, Any] = {}
        for key, key_node, value_node in items:
            spec = self.fields.get(key)
            if spec is None:
                allowed = ", ".join(self.fields)
                ctx.problem(key_node, join(path, key), f"unknown field; expected one of: {allowed}")
                result[key] = INVALID
                continue
            result[key] = spec.schema.check(value_node, join(path, key), ctx, depth + 1)
        for key, spec in self.fields.items():
            if key not in result:
                if spec.required:
                    ctx.problem(node, join(path, key), "required field is missing")
                    result[key] = INVALID
                else:
                    result[key] = spec.schema.default_value()
        return INVALID if INVALID in result.values() else result

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
        return self._with_doc(schema)


class OneOf(Schema):
    """A mapping with exactly one key naming the variant: `{http: {...}}` or `{tcp: {...}}`.

    Extra keys named in `common` are allowed beside the variant key (e.g. a probe's `name`).
    """

    def __init__(self, variants: Mapping[str, Schema], doc: str = "",
                 common: Mapping[str, Schema | Field] | None = None) -> None:
        self.variants = dict(variants)
        self.common = Obj(common or {})
        self.doc = doc

    def _check(self, node: yaml.Node, path: str, ctx: Context, depth: int) -> Any:
        if not isinstance(node, yaml.MappingNode):
            return ctx.problem(node, path, f"expected a mapping with one of: {self._names()}")
        present = [(k, v) for k, v in node.value
                   if isinstance(k, yaml.ScalarNode) and k.value in self.variants]
        if len(present) != 1:
            what = "more than one of" if present else "one of"
            return ctx.problem(node, path, f"expected exactly {what}: {self._names()}"
                               if not present else f"expected only one of: {self._names()}")
        kind, value_node = present[0][0].value, present[0][1]
        rest = yaml.MappingNode(node.tag, [(k, v) for k, v in node.value if k is not present[0][0]],
                                node.start_mark, node.end_mark)
        common = self.common.check(rest, path, ctx, depth)
        body = self.variants[kind].check(value_node, join(path, kind), ctx, depth + 1)
        if common is INVALID or body is INVALID:
            return INVALID
        return {"kind": kind, "spec": body, **common}

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
            return ctx.problem(node, path, "expected the command as a list like [python, -m, app]; "
                               "a string would need a shell, which we never use")
        return super()._check(node, path, ctx, depth)
