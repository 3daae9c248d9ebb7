"""`.json` experiment files parsed as JSON (RFC 8259), into the located node tree YAML gives.

JSON is nearly a subset of YAML, but only nearly: read as YAML, `1e2` is the string "1e2",
and trailing commas, comments and single quotes pass, where Chaos Toolkit's `json.load` refuses
them. So a `.json` file is parsed by the JSON grammar here, and every value becomes the same
yaml node (with its line and column) the loaders already check - no second copy of them.
Strings are decoded by the standard library's own JSON string scanner.
"""

from __future__ import annotations

import bisect
import json.decoder
import re

import yaml

_CORE = "tag:yaml.org,2002:"
_SPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS = {"true": "bool", "false": "bool", "null": "null"}
_NOT_JSON = {  # what people write that JSON does not have, and Python's json module says
    "NaN": "NaN is not a JSON number (Python's json module writes it, the JSON grammar has "
           "no such value)",
    "Infinity": "Infinity is not a JSON number",
    "-Infinity": "-Infinity is not a JSON number",
}

_STRING_ERRORS = {  # json.decoder.scanstring's words -> what to do
    "Unterminated string starting at": "a string without its closing double quote",
    "Invalid control character at": "a raw tab or line break inside a string: write it as "
                                    "\\t or \\n",
    "Invalid \\escape": "an unknown \\ escape in a string: write \\\\ for a backslash",
    "Invalid \\uXXXX escape": "a \\u escape needs four hex digits, e.g. \\u00e9",
}


class JsonError(ValueError):
    """A JSON syntax error at a character offset."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


def compose(text: str, name: str, max_depth: int) -> yaml.Node | None:
    """The node tree of a JSON document (None when it is only whitespace), or JsonError."""
    return _Parser(text, name, max_depth).document()


class _Parser:
    def __init__(self, text: str, name: str, max_depth: int) -> None:
        self.text, self.name, self.max_depth = text, name, max_depth
        self.lines = [0] + [m.end() for m in re.finditer("\n", text)]
        self.depth = 0

    def mark(self, position: int) -> yaml.Mark:
        line = bisect.bisect_right(self.lines, position) - 1
        return yaml.Mark(self.name, position, line, position - self.lines[line], None, 0)

    def skip(self, position: int) -> int:
        end = _SPACE.match(self.text, position)
        assert end is not None  # matches the empty string
        position = end.end()
        if self.text.startswith(("//", "/*"), position) or self.text.startswith("#", position):
            raise JsonError("a comment: JSON has none (Chaos Toolkit refuses it too); remove "
                            "it, or write the experiment as YAML", position)
        return position

    def document(self) -> yaml.Node | None:
        start = self.skip(1 if self.text.startswith("\ufeff") else 0)
        if start == len(self.text):
            return None
        node, end = self.value(start)
        end = self.skip(end)
        if end != len(self.text):
            raise JsonError("extra data after the JSON document: one experiment per file",
                            end)
        return node

    def value(self, position: int) -> tuple[yaml.Node, int]:
        text = self.text
        char = text[position:position + 1]
        if char == "{":
            return self.nested(position, "}", self.members)
        if char == "[":
            return self.nested(position, "]", self.items)
        if char == '"':
            value, end = self.string(position)
            return self.scalar("str", value, position, end, '"'), end
        if char == "'":
            raise JsonError("a string in single quotes: JSON strings are in double quotes",
                            position)
        for word, kind in _LITERALS.items():
            if text.startswith(word, position):
                return self.scalar(kind, word, position, position + len(word)), \
                    position + len(word)
        for word, message in _NOT_JSON.items():
            if text.startswith(word, position):
                raise JsonError(message + "; write a number, or a string", position)
        number = _NUMBER.match(text, position)
        if number:
            kind = "float" if number[1] or number[2] else "int"
            return self.scalar(kind, number[0], position, number.end()), number.end()
        if not char:
            raise JsonError("the document ends where a value was expected", position)
        raise JsonError(f"expected a value (a string in double quotes, a number, true, false, "
                        f"null, {{...}} or [...]), got {_shown(text, position)}", position)

    def nested(self, position: int, close: str, parse: object) -> tuple[yaml.Node, int]:
        self.depth += 1
        if self.depth > self.max_depth:
            raise JsonError(f"nested more than {self.max_depth} levels deep; flatten the "
                            "document", position)
        try:
            return parse(position)  # type: ignore[operator, no-any-return]
        finally:
            self.depth -= 1

    def members(self, start: int) -> tuple[yaml.Node, int]:
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        comma, position = start, self.skip(start + 1)
        if self.text.startswith("}", position):
            return self.mapping(pairs, start, position + 1), position + 1
        while True:
            if pairs and self.text.startswith("}", position):
                raise JsonError("a trailing comma before `}`: JSON allows none; remove it",
                                comma)
            if self.text.startswith("'", position):
                raise JsonError("a key in single quotes: JSON strings are in double quotes",
                                position)
            if not self.text.startswith('"', position):
                raise JsonError(f"expected a key in double quotes, got "
                                f"{_shown(self.text, position)}", position)
            key, end = self.string(position)
            key_node = self.scalar("str", key, position, end, '"')
            position = self.skip(end)
            if not self.text.startswith(":", position):
                raise JsonError(f"expected `:` after the key {key!r}, got "
                                f"{_shown(self.text, position)}", position)
            value, end = self.value(self.skip(position + 1))
            pairs.append((key_node, value))
            position = self.skip(end)
            if self.text.startswith("}", position):
                return self.mapping(pairs, start, position + 1), position + 1
            if not self.text.startswith(",", position):
                raise JsonError(f"expected `,` or `}}` after the value of {key!r}, got "
                                f"{_shown(self.text, position)}", position)
            comma, position = position, self.skip(position + 1)

    def items(self, start: int) -> tuple[yaml.Node, int]:
        values: list[yaml.Node] = []
        comma, position = start, self.skip(start + 1)
        if self.text.startswith("]", position):
            return self.sequence(values, start, position + 1), position + 1
        while True:
            if values and self.text.startswith("]", position):
                raise JsonError("a trailing comma before `]`: JSON allows none; remove it",
                                comma)
            value, end = self.value(position)
            values.append(value)
            position = self.skip(end)
            if self.text.startswith("]", position):
                return self.sequence(values, start, position + 1), position + 1
            if not self.text.startswith(",", position):
                raise JsonError(f"expected `,` or `]` after a list item, got "
                                f"{_shown(self.text, position)}", position)
            comma, position = position, self.skip(position + 1)

    def string(self, position: int) -> tuple[str, int]:
        try:
            found: tuple[str, int] = json.decoder.scanstring(  # type: ignore[attr-defined]
                self.text, position + 1, True)
            return found
        except json.JSONDecodeError as exc:
            raise JsonError(_STRING_ERRORS.get(exc.msg, exc.msg), exc.pos) from None

    def scalar(self, kind: str, value: str, start: int, end: int,
               style: str | None = None) -> yaml.ScalarNode:
        return yaml.ScalarNode(_CORE + kind, value, self.mark(start), self.mark(end), style)

    def mapping(self, pairs: list[tuple[yaml.Node, yaml.Node]], start: int,
                end: int) -> yaml.MappingNode:
        return yaml.MappingNode(_CORE + "map", pairs, self.mark(start), self.mark(end), True)

    def sequence(self, values: list[yaml.Node], start: int, end: int) -> yaml.SequenceNode:
        return yaml.SequenceNode(_CORE + "seq", values, self.mark(start), self.mark(end), True)


def _shown(text: str, position: int) -> str:
    if position >= len(text):
        return "the end of the file"
    word = re.match(r"[^\s,:{}\[\]]{1,20}|.", text[position:], re.DOTALL)
    assert word is not None
    return repr(word[0])
