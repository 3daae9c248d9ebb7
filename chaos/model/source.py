"""YAML loading that keeps source locations and refuses what would surprise a reader.

We compose YAML into nodes (never construct arbitrary Python objects), so every value keeps its
line and column for error messages. Duplicate keys are errors (PyYAML silently keeps the last),
alias expansion is bounded (billion laughs), and `${var}` is substituted in scalars from
`--var` values, then the environment.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass

import yaml

from chaos.errors import ExperimentInvalid, Location, Problem

MAX_ALIASES = 64
MAX_NODES = 50_000
MAX_DEPTH = 64
MAX_BYTES = 2 * 1024 * 1024
# YAML 1.1 also breaks lines at NEL, LS and PS; editors do not, so locations would disagree.
_ODD_BREAK = re.compile("[\x85\u2028\u2029]")
_BREAK = re.compile("\r\n|\r|\n")
_VAR = VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class SourceText:
    name: str  # shown in messages: the path as the user gave it
    text: str


def read(path: str | os.PathLike[str]) -> SourceText:
    """A file's text, bounded (/dev/zero or a 10 GB log is not an input file) and UTF-8 checked;
    every failure is an ExperimentInvalid naming the file.

    Only regular files are read (a FIFO would block forever, a device never ends), and a file
    larger than MAX_BYTES is refused from its size, before any of it is read."""
    name = str(path)

    def refuse(what: str) -> ExperimentInvalid:
        return ExperimentInvalid([Problem(None, "", what)], source=name)

    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise refuse("file not found") from None
    except OSError as exc:
        raise refuse(f"cannot read: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise refuse("is a directory, not an experiment file")
        if not stat.S_ISREG(info.st_mode):
            raise refuse(f"is {_file_kind(info.st_mode)}, not a regular file; save the input "
                         "to a file and pass that")
        raise refuse(f"file is larger than {MAX_BYTES // 1024} KiB; split it")
    with os.fdopen(fd, "rb") as file:
        try:
            data = file.read(MAX_BYTES + 1)  # bounded again: the file may grow meanwhile
        except OSError as exc:
            raise refuse(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise refuse(f"file is larger than {MAX_BYTES // 1024} KiB; split it")
    try:
        return SourceText(name, data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        where = Location(name, before.count(b"\n") + 1, exc.start - before.rfind(b"\n"))
        raise ExperimentInvalid([Problem(where, "", f"byte {data[exc.start]:#x} is not UTF-8 "
                                                    "text; save the file as UTF-8")],
                                source=name) from None


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a regular file"


class _Loader(yaml.SafeLoader):
    """SafeLoader that bounds aliases and nesting while composing.

    Composing recurses once per nesting level, so a file of 10 000 `[` would exhaust Python's
    stack; we refuse it at MAX_DEPTH with a located message instead.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_count = 0
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.alias_count += 1
            if self.alias_count > MAX_ALIASES:
                raise yaml.MarkedYAMLError(
                    problem=f"more than {MAX_ALIASES} YAML aliases; expand them by hand",
                    problem_mark=self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise yaml.MarkedYAMLError(
                    problem=f"nested more than {MAX_DEPTH} levels deep; flatten the document",
                    problem_mark=self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    """The value node of `key` in a mapping node (the first, if the key is duplicated)."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v  # type: ignore[no-any-return]
    return None


def location(source: str, node: yaml.Node) -> Location:
    mark = node.start_mark
    return Location(source, mark.line + 1, mark.column + 1)


def compose(src: SourceText) -> yaml.Node:
    """Parse text into a node tree; a YAML syntax error becomes an ExperimentInvalid."""
    if len(src.text) > MAX_BYTES:
        raise ExperimentInvalid(
            [Problem(None, "", f"file is larger than {MAX_BYTES // 1024} KiB; split it")],
            source=src.name,
        )
    if src.name.lower().endswith(".json"):
        return _compose_json(src)
    if odd := _ODD_BREAK.search(src.text):
        raise ExperimentInvalid([Problem(
            _offset_location(src, odd.start()), "",
            f"character {_char(odd.group())} is a line break to YAML but not to most editors, "
            "so line numbers would not match; replace it with a newline or remove it",
        )], source=src.name)
    text, kind = src.text, "YAML"
    loader = None
    try:
        loader = _Loader(text)  # the reader checks every character here, before parsing
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(src.name, mark.line + 1, mark.column + 1) if mark else None
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        raise ExperimentInvalid(
            [Problem(loc, "", f"invalid {kind}: {what}{_yaml_hint(what)}")], source=src.name
        ) from None
    except yaml.reader.ReaderError as exc:
        raise ExperimentInvalid([Problem(
            _offset_location(src, exc.position), "",
            f"invalid {kind}: character {_char(exc.character)} is not allowed in {kind} text; "
            "remove it or write it as an escape in a double-quoted string",
        )], source=src.name) from None
    except yaml.YAMLError as exc:
        raise ExperimentInvalid(
            [Problem(None, "", f"invalid {kind}: {exc}")], source=src.name
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        raise ExperimentInvalid(
            [Problem(Location(src.name, 1, 1), "",
                     "file is empty; an experiment needs at least a title")],
            source=src.name,
        )
    return node


def _compose_json(src: SourceText) -> yaml.Node:
    """A `.json` file by the JSON grammar (chaos.model.json_nodes), as Chaos Toolkit reads it:
    YAML would take `1e2` for text and let comments and trailing commas through."""
    from chaos.model import json_nodes

    try:
        node = json_nodes.compose(src.text, src.name, MAX_DEPTH)
    except json_nodes.JsonError as exc:
        before = src.text[:exc.position]
        where = Location(src.name, before.count("\n") + 1, exc.position - before.rfind("\n"))
        raise ExperimentInvalid([Problem(where, "", f"invalid JSON: {exc}")],
                                source=src.name) from None
    if node is None:
        raise ExperimentInvalid(
            [Problem(Location(src.name, 1, 1), "",
                     "file is empty; an experiment needs at least a title")],
            source=src.name,
        )
    return node


def _yaml_hint(what: str) -> str:
    """The fix for the YAML mistakes people actually make, which PyYAML words cryptically."""
    if "'\\t'" in what:
        return "; indent with spaces, not tabs"
    if "found another document" in what:
        return "; one experiment per file (remove the `---` line)"
    if "mapping values are not allowed" in what:
        return "; check the indentation, or quote a value that contains `: `"
    if "found undefined alias" in what:
        return "; define the anchor (&name) before using it (*name)"
    return ""


def _char(character: int | str) -> str:
    code = character if isinstance(character, int) else ord(character[:1] or "\0")
    return f"{chr(code)!r} (U+{code:04X})"


def _offset_location(src: SourceText, position: int) -> Location:
    """Line and column of a character offset, counting line breaks the way YAML does."""
    lines = _BREAK.split(src.text[:position])
    return Location(src.name, len(lines), len(lines[-1]) + 1)


_resolver = yaml.resolver.Resolver()
_CORE = "tag:yaml.org,2002:"
_READABLE_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null"))
_TEXT_TAGS = frozenset(_CORE + t for t in ("timestamp", "value", "merge"))  # `2024-01-01`, `=`


def scalar_value(node: yaml.ScalarNode) -> object:
    """The Python value of a scalar (str, int, float, bool, None), like PyYAML's safe_load.

    Dates, `=` and `<<` stay text (no field wants a date). Other tags (`!!binary`,
    `!!python/...`, `!foo`) and explicitly tagged values PyYAML cannot read (`!!int abc`) raise
    ValueError.
    """
    if node.tag in _TEXT_TAGS:
        return node.value
    if node.tag not in _READABLE_TAGS:
        raise ValueError(f"unsupported YAML tag {node.tag.replace(_CORE, '!!')}; remove it")
    try:
        # A fresh constructor each time: construct_object caches every node it has seen.
        return yaml.constructor.SafeConstructor().construct_object(node)
    except Exception:  # noqa: BLE001 - PyYAML's scalar constructors fail with IndexError,
        # KeyError, AttributeError... on odd explicitly tagged text; that is the user's input
        # being wrong, not a crash of ours.
        tag = node.tag.replace(_CORE, "!!")
        raise ValueError(f"cannot read {node.value!r} as {tag}") from None


def referenced(text: str) -> frozenset[str]:
    """The variable names a file refers to as ${name} (for refusing a --var nothing uses)."""
    return frozenset(m.group(1) for m in _VAR.finditer(text))


def substitute(
    node: yaml.ScalarNode, variables: Mapping[str, str]
) -> tuple[yaml.ScalarNode, list[str]]:
    """Replace ${name} and ${name:-default} from variables, then the environment.

    Returns the new node and the names that were not set, so the caller reports them where they
    are used (a half-substituted value must never reach a fault or a probe).
    """
    if "${" not in node.value:
        return node, []
    missing: list[str] = []

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
    # A plain scalar, or a quoted one that is exactly `${name}` (flow style needs the quotes:
    # `{pid: "${pid}"}`), takes the type of its value, so ${port} can be an int.
    whole = _VAR.fullmatch(node.value) is not None
    if node.style is None or (whole and node.tag == "tag:yaml.org,2002:str"):
        tag = _resolver.resolve(  # type: ignore[no-untyped-call]
            yaml.ScalarNode, value, (True, False))
    return yaml.ScalarNode(tag, value, node.start_mark, node.end_mark, node.style), missing
