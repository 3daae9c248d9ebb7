"""A small schema language: one declaration validates YAML nodes and emits JSON Schema.

Every field of the experiment format, and every fault's parameters, is declared once with these
types. `check(node)` converts a located YAML node into plain Python values (durations in seconds,
percents as fractions) and appends a Problem for every mistake, so a file reports all its problems
at once. `json_schema()` publishes the same declaration for editors (`chaos schema`).

A subtree is INVALID when any problem was reported while walking it; walks never stop early, so
one typo does not hide the next. `Obj.fields_of` and `List.items_of` give the partial result
(valid parts kept) to the loader's second step, which checks what needs sibling context.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from chaos.errors import Problem
from chaos.model import source
from chaos.units import (
    DURATION_PATTERN,
    PERCENT_PATTERN,
    RATE_PATTERN,
    SIZE_PATTERN,
    format_duration,
    format_percent,
    parse_duration,
    parse_percent,
    parse_rate,
    parse_size,
    shown,
)

INVALID: Any = object()  # marks a value that had a problem; builders skip it
MAX_PROBLEMS = 100  # past this, a file is the wrong kind of file: count the rest, list none
# JSON Schema: a value holding ${var} is checked by the loader, after substitution
VAR_PATTERN = r"\$\{"


@dataclass
class Context:
    """Carries the file name, variables, the problem list and the node budget through a walk."""

    file: str
    variables: Mapping[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    count: int = 0  # problems reported, also those past MAX_PROBLEMS
    nodes: int = 0

    def problem(self, node: yaml.Node | None, path: str, message: str) -> Any:
        self.count += 1
        if self.count <= MAX_PROBLEMS:
            loc = source.location(self.file, node) if node is not None else None
            self.problems.append(Problem(loc, path, message))
        return INVALID

    def sorted_problems(self) -> list[Problem]:
        """In reading order (file-level ones first), plus a line for those not listed."""
        result = sorted(self.problems, key=lambda p: (p.location.line, p.location.column)
                        if p.location else (0, 0))
        if self.count > MAX_PROBLEMS:
            result.append(Problem(None, "", f"... and {self.count - MAX_PROBLEMS} more problems "
                                            "(is this an experiment file?)"))
        return result


def kind_of(node: yaml.Node) -> str:
    """How a node is named in messages: `expected a list, got a mapping`."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return shown(node.value) if node.value != "" else "nothing"


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def suggest(word: str, choices: list[str]) -> str:
    """`; did you mean X?` for a likely typo, else nothing."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _unreadable(text: str) -> str | None:
    """Why a string from the file cannot be used (it would crash a print or an exec later)."""
    if "\x00" in text:
        return "contains a NUL character (\\0)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired surrogate escape (\\uD800-\\uDFFF)"
    return None


class Schema:
    doc: str = ""
    default: Any = None

    def check(self, node: yaml.Node, path: str, ctx: Context, depth: int = 0) -> Any:
        ctx.nodes += 1
        if depth > source.MAX_DEPTH or ctx.nodes > source.MAX_NODES:
            if ctx.nodes == source.MAX_NODES + 1 or depth == source.MAX_DEPTH + 1:
                return ctx.problem(node, path, "document is nested too deep or is too large "
                                               "(YAML aliases count every time they are used)")
            return INVALID
        mark = ctx.count
        value = self._check(node, path, ctx, depth)
        return INVALID if ctx.count != mark else value

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
            return ctx.problem(node, path, f"expected {self.expected()}, got {kind_of(node)}")
        node, missing = source.substitute(node, ctx.variables)
        if missing:
            name = missing[0]
            return ctx.problem(node, path, f"variable ${{{name}}} is not set: pass --var "
                                           f"{name}=VALUE, export {name}, or add it under vars")
        try:
            value = self.value_of(node)
            if isinstance(value, str) and (why := _unreadable(value)):
                raise ValueError(f"the value {why}")
            return self.convert(value)
        except ValueError as exc:
            return ctx.problem(node, path, str(exc))

    def value_of(self, node: yaml.ScalarNode) -> object:
        return source.scalar_value(node)

    def convert(self, value: object) -> Any:
        raise NotImplementedError

    def default_value(self) -> Any:
        return None if self.default is None else self.convert(self.default)

    def expected(self) -> str:
        return self.describe()

    def _or_var(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Also accept a string holding ${var}: its type is known only after substitution."""
        return {"anyOf": [schema, {"type": "string", "pattern": VAR_PATTERN}]}


class Str(Scalar):
    def __init__(
        self, doc: str = "", default: Any = None, *, pattern: str | None = None,
        choices: tuple[str, ...] = (), min_length: int = 0,
    ) -> None:
        super().__init__(doc, default)
        self.pattern = pattern  # compiled on first use (re caches it): imports stay fast
        self.choices, self.min_length = choices, min_length

    def value_of(self, node: yaml.ScalarNode) -> object:
        """The text as written: `name: 0x10` is "0x10", not 16; `title: yes` is a mistake."""
        value = source.scalar_value(node)
        if isinstance(value, bool):
            raise ValueError(f"expected {self.expected()}, got {node.value}, which YAML reads "
                             f"as {str(value).lower()}; quote it")
        if isinstance(value, (int, float)):
            return node.value
        return value

    def convert(self, value: object) -> str:
        if isinstance(value, (bool, bytes)) or value is None or isinstance(value, (list, dict)):
            if value is None:
                raise ValueError(f"expected {self.expected()}, got nothing")
            raise ValueError(f"expected {self.expected()}, got {shown(value)}")
        text = str(value)
        if self.choices and text not in self.choices:
            raise ValueError(f"expected one of {', '.join(self.choices)}, got {shown(text)}"
                             f"{suggest(text, list(self.choices))}")
        if self.pattern and not re.fullmatch(self.pattern, text):
            raise ValueError(f"expected {self.expected()}, got {shown(text)}")
        if len(text) < self.min_length:
            raise ValueError("expected a non-empty string")
        return text

    def expected(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return f"a string matching {self.pattern}" if self.pattern else "a string"

    def describe(self) -> str:
        return "|".join(self.choices) if self.choices else "string"

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.choices:
            schema = self._or_var({"enum": list(self.choices)})
        if self.pattern:
            schema["pattern"] = f"^(?:{self.pattern})$|{VAR_PATTERN}"
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
            quoted = isinstance(value, str) and value.strip().lstrip("+-").isdigit()
            raise ValueError(f"expected {self.expected()}, got {shown(value)}"
                             + ("; remove the quotes" if quoted else ""))
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
        return self._with_doc(self._or_var(schema))


class Bool(Scalar):
    def convert(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {shown(value)}")
        return value

    def describe(self) -> str:
        return "boolean"

    def json_schema(self) -> dict[str, Any]:
        return self._with_doc(self._or_var({"type": "boolean"}))


_UNIT_PATTERNS: dict[Callable[[object], Any], str] = {
    parse_duration: DURATION_PATTERN, parse_percent: PERCENT_PATTERN, parse_size: SIZE_PATTERN,
    parse_rate: RATE_PATTERN,
}


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
            raise ValueError(f"expected a {self.name} of at least {self.bound(self.min)}, "
                             f"got {shown(value)}")
        if self.max is not None and parsed > self.max:
            raise ValueError(f"expected a {self.name} of at most {self.bound(self.max)}, "
                             f"got {shown(value)}")
        return parsed

    def bound(self, value: float) -> str:
        return self.default_text(value)

    def default_text(self, value: float) -> str:
        """A number of this unit written back the way a user would write it."""
        if self.parser is parse_duration:
            return format_duration(value)
        if self.parser is parse_percent:
            return format_percent(value)
        return f"{value:g}"

    def describe(self) -> str:
        return f"{self.name} (e.g. {self.example})"

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "examples": [self.example]}
        pattern = _UNIT_PATTERNS.get(self.parser)
        if pattern:
            schema["pattern"] = f"^(?:{pattern})$|{VAR_PATTERN}"
        if self.parser is parse_size:
            schema = {"anyOf": [schema, {"type": "integer", "minimum": 0}]}
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
        if why := _unreadable(key):
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
