"""The scalar types of the schema language: strings, integers, booleans and values with units.

Each converts one YAML scalar (after ${var} substitution) into a plain Python value, durations in
seconds and percents as fractions, or reports what was expected. They are kept apart from the
containers (chaos.model.schema), which only ever hand them single scalars to check.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

from chaos.model import source
from chaos.model.walk import Context, Schema, kind_of, suggest, unreadable
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

# JSON Schema: a value holding ${var} is checked by the loader, after substitution
HTTP_URL = r"https?://[^/?#:@\s][^\s]*"  # a host right after //: `http://:9090` names none
VAR_PATTERN = r"\$\{"


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
            if isinstance(value, str) and (why := unreadable(value)):
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


class Regex(Str):
    """A regular expression (Python `re` syntax), compiled here so a typo is refused at its
    line by `chaos validate`, not when a fault or probe starts."""

    def convert(self, value: object) -> str:
        text = super().convert(value)
        try:
            re.compile(text)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}; escape literal "
                             "characters such as ( [ . * + ? with a backslash") from None
        return text

    def describe(self) -> str:
        return "regular expression"

    def json_schema(self) -> dict[str, Any]:
        return {**super().json_schema(), "format": "regex"}


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
