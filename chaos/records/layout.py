"""How a typed record becomes the JSON object it was read from, key for key and in order.

A journal record's JSON keys are its dataclass fields (a field may name its key with
`metadata={"key": ...}` where the key is no Python name, such as `with`). Which keys a document
holds, and in which order, varies a little between writers (an error journal has no phases'
timestamps; a guardrail that was never measured lists fewer fields), so each record carries its
`layout`: the keys present, in order. A record built by the runner uses the declared order; one
read from a file keeps the file's, and keeps the keys it does not know in `extra`, so
`from_json(doc).to_json() == doc` byte for byte.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar, Union

# A JSON value as `json.loads` returns it, and the object form the journal's open-ended parts
# take (an event's payload, a fault's parameters, a revert spec, a target's identity).
JsonValue = Union[None, bool, int, float, str, Sequence["JsonValue"], Mapping[str, "JsonValue"]]
JsonObject = Mapping[str, JsonValue]

R = TypeVar("R")


class Damaged(ValueError):
    """A journal field that is missing or of the wrong type; `where` is its path."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


# a record's own bookkeeping, not JSON keys
BOOKKEEPING = ("layout", "extra")


def keys_of(cls: type[Any]) -> dict[str, str]:
    """{JSON key: field name} of a record class, in declared order."""
    return {f.metadata.get("key", f.name): f.name for f in dataclasses.fields(cls)
            if f.name not in BOOKKEEPING}


def to_json(record: Any) -> dict[str, Any]:
    """The record's JSON object: its layout's keys (or every field), values converted; a key
    this version does not know comes back from `extra` as it was read."""
    names = keys_of(type(record))
    layout = record.layout if record.layout is not None else tuple(names)
    return {key: plain(getattr(record, names[key])) if key in names else record.extra[key]
            for key in layout}


class Record:
    """A journal record: a frozen dataclass whose JSON is its layout's keys (see above)."""

    def to_json(self) -> dict[str, Any]:
        return to_json(self)


def plain(value: Any) -> Any:
    """A record, a tuple of them or a mapping as JSON-ready lists and dicts."""
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


def shape(cls: type[Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """A record's `layout` (the keys of `data` in order; None when they are exactly the declared
    ones) and `extra` (keys it does not know: a newer chaos may have added them; kept, so the
    document goes back out as it came in)."""
    names = keys_of(cls)
    keys = tuple(data)
    return {"layout": None if keys == tuple(names) else keys,
            "extra": MappingProxyType({k: v for k, v in data.items() if k not in names})}


def obj(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise Damaged(where)
    return data


def items(data: Any, where: str, read: Callable[[Any, str], R]) -> tuple[R, ...]:
    """A JSON list (absent or null: empty) read element by element."""
    if data is None:
        return ()
    if not isinstance(data, list):
        raise Damaged(where)
    return tuple(read(item, f"{where}[{i}]") for i, item in enumerate(data))


def text(value: Any, where: str) -> str:
    """A list element that must be a string (a tag, a check, a fault's name)."""
    if not isinstance(value, str):
        raise Damaged(where)
    return value


def typed(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """`data[key]` when it is of `kind` (bool is no number here), None when absent or null (the
    layout tells those apart); anything else is a damaged document."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise Damaged(f"{where}.{key}" if where else key)
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


NUMBER = (int, float)
