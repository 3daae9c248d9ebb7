"""The walk every schema type shares: the Context it carries and the Schema base class.

`Schema.check` counts each node against chaos.model.source's budget, calls the type's `_check`,
and returns INVALID if any problem was reported meanwhile; the Context collects those problems
with their locations. The message helpers (kind_of, join, suggest) serve both the scalar types
(chaos.model.scalars) and the containers (chaos.model.schema). Import it all from
chaos.model.schema, the one public face of the schema language.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from chaos.errors import Problem
from chaos.model import source
from chaos.units import shown

INVALID: Any = object()  # marks a value that had a problem; builders skip it
MAX_PROBLEMS = 100  # past this, a file is the wrong kind of file: count the rest, list none


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
    """`; did you mean X?` for a likely typo or a name borrowed from another tool, else nothing."""
    from chaos.model.borrowed import borrowed

    known = borrowed(word, choices)
    if known:
        return known
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def unreadable(text: str) -> str | None:
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

