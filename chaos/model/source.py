"""YAML loading that keeps source locations and refuses what would surprise a reader.

We compose YAML into nodes (never construct arbitrary Python objects), so every value keeps its
line and column for error messages. Duplicate keys are errors (PyYAML silently keeps the last),
alias expansion is bounded (billion laughs), and `${var}` is substituted in scalars from
`--var` values, then the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import yaml

from chaos.errors import ExperimentInvalid, Location, Problem

MAX_ALIASES = 64
MAX_NODES = 50_000
MAX_DEPTH = 64
MAX_BYTES = 2 * 1024 * 1024
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class SourceText:
    name: str  # shown in messages: the path as the user gave it
    text: str


class _Loader(yaml.SafeLoader):
    """SafeLoader that counts aliases while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_count = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.alias_count += 1
            if self.alias_count > MAX_ALIASES:
                event = self.peek_event()
                raise yaml.MarkedYAMLError(
                    problem=f"more than {MAX_ALIASES} YAML aliases; expand them by hand",
                    problem_mark=event.start_mark,
                )
        return super().compose_node(parent, index)  # type: ignore[no-any-return]


def location(source: str, node: yaml.Node) -> Location:
    mark = node.start_mark
    return Location(source, mark.line + 1, mark.column + 1)


def compose(src: SourceText) -> yaml.Node:
    """Parse text into a node tree; a YAML syntax error becomes an ExperimentInvalid."""
    if len(src.text) > MAX_BYTES:
        raise ExperimentInvalid(
            [Problem(None, "", f"file is larger than {MAX_BYTES // 1024} KiB")], source=src.name
        )
    loader = _Loader(src.text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(src.name, mark.line + 1, mark.column + 1) if mark else None
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        raise ExperimentInvalid(
            [Problem(loc, "", f"invalid YAML: {what}")], source=src.name
        ) from None
    except yaml.YAMLError as exc:
        raise ExperimentInvalid(
            [Problem(None, "", f"invalid YAML: {exc}")], source=src.name
        ) from None
    finally:
        loader.dispose()
    if node is None:
        raise ExperimentInvalid([Problem(None, "", "file is empty")], source=src.name)
    return node


_resolver = yaml.resolver.Resolver()
_constructor = yaml.constructor.SafeConstructor()


def scalar_value(node: yaml.ScalarNode) -> object:
    """The Python value of a scalar (str, int, float, bool, None), like PyYAML's safe_load."""
    try:
        return _constructor.construct_object(node, deep=True)
    except (yaml.constructor.ConstructorError, ValueError):
        return node.value


def substitute(
    node: yaml.ScalarNode, variables: Mapping[str, str], missing: list[str]
) -> yaml.ScalarNode:
    """Replace ${name} and ${name:-default} from variables, then the environment."""
    if "${" not in node.value:
        return node

    def lookup(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in variables:
            return variables[name]
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        missing.append(name)
        return match.group(0)

    value = _VAR.sub(lookup, node.value)
    tag = node.tag
    if node.style is None:  # plain scalar: resolve its type again, so ${port} can be an int
        tag = _resolver.resolve(yaml.ScalarNode, value, (True, False))
    return yaml.ScalarNode(tag, value, node.start_mark, node.end_mark, node.style)
