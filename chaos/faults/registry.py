"""The fault catalogue: one registry object, built-ins registered by decorator-like calls.

A fault type is data: a name, a one-line summary, the parameter schema (types, units, defaults,
docs) and the target kinds it supports. `chaos faults`, validation, the JSON Schema and the ad hoc
`chaos inject` flags are all derived from it. Registration checks the declaration at once, so a
broken plugin fails when it registers, not halfway through an experiment.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chaos.model.experiment import FaultShape, Target
from chaos.model.schema import Int, Obj, Schema

log = logging.getLogger(__name__)
_NAME = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")
_FLAG = re.compile(r"[a-z][a-z0-9-]*")


@dataclass(frozen=True)
class FaultType:
    name: str  # category.action, e.g. process.suspend
    summary: str
    params: Obj
    target_kinds: tuple[str, ...]
    instant: bool = False  # happens once (kill, restart): no duration, nothing to hold
    # what no schema says (see FaultShape.check): checked by `chaos validate` with locations
    check: Callable[[Target, Mapping[str, Any]], Sequence[tuple[str, str]]] | None = None

    @property
    def category(self) -> str:
        return self.name.split(".", 1)[0]

    def shape(self) -> FaultShape:
        return FaultShape(self.params, self.target_kinds, self.instant, self.check)


@dataclass(frozen=True)
class TargetFlag:
    """A `chaos inject` flag that sets one field of a target kind's selector."""

    kind: str
    field: str
    type: type[int] | type[str]
    help: str


class FaultRegistry:
    def __init__(self) -> None:
        self._types: dict[str, FaultType] = {}
        self._targets: dict[str, Schema] = {}
        self._flags: dict[str, TargetFlag] = {}

    def add_target_kind(self, kind: str, selector: Schema) -> None:
        """A target kind and its selector; selector fields declared with `flag=` become
        `chaos inject` flags, each flag owned by one kind."""
        if kind in self._targets:
            raise ValueError(f"target kind {kind!r} is already registered")
        flags: dict[str, TargetFlag] = {}
        for name, field in (selector.fields.items() if isinstance(selector, Obj) else ()):
            if not field.flag:
                continue
            if not _FLAG.fullmatch(field.flag):
                raise ValueError(f"target kind {kind!r}: flag {field.flag!r} of {name} must be "
                                 "a lowercase word")
            owner = self._flags.get(field.flag) or flags.get(field.flag)
            if owner is not None:
                raise ValueError(f"target kind {kind!r}: flag --{field.flag} already sets "
                                 f"{owner.kind}.{owner.field}")
            flags[field.flag] = TargetFlag(kind, name, int if isinstance(field.schema, Int)
                                           else str, field.help or field.schema.doc)
        self._targets[kind] = selector
        self._flags.update(flags)

    @property
    def target_flags(self) -> Mapping[str, TargetFlag]:
        """flag -> what it sets, in the order the kinds and their fields were declared."""
        return dict(self._flags)

    def add(self, fault: FaultType) -> FaultType:
        if not _NAME.fullmatch(fault.name):
            raise ValueError(f"fault type {fault.name!r} must look like category.action")
        if fault.name in self._types:
            raise ValueError(f"fault type {fault.name!r} is already registered")
        if not isinstance(fault.params, Obj):
            raise TypeError(f"{fault.name}: params must be an Obj schema")
        for key, spec in fault.params.fields.items():
            if not spec.schema.doc:
                raise ValueError(f"{fault.name}: parameter {key!r} needs a doc string")
        unknown = [k for k in fault.target_kinds if k not in self._targets]
        if unknown or not fault.target_kinds:
            raise ValueError(f"{fault.name}: unknown target kinds {unknown}")
        self._types[fault.name] = fault
        return fault

    def get(self, name: str) -> FaultType | None:
        return self._types.get(name)

    def __iter__(self) -> Iterator[FaultType]:
        return iter(sorted(self._types.values(), key=lambda f: f.name))

    def __contains__(self, name: object) -> bool:
        return name in self._types

    @property
    def target_kinds(self) -> Mapping[str, Schema]:
        return dict(self._targets)

    def shapes(self) -> dict[str, FaultShape]:
        return {name: f.shape() for name, f in self._types.items()}


class PluginEntryPoint(Protocol):
    """What the plugin route needs of an `importlib.metadata.EntryPoint` (tests pass fakes)."""

    @property
    def name(self) -> str: ...

    def load(self) -> Any: ...


def load_plugins(group: str, register: Callable[[Any], None],
                 entries: Iterable[PluginEntryPoint] | None = None) -> list[str]:
    """Hand every entry point of `group` to `register`; the names that registered.

    The one plugin route of every registry (faults and adapters, reporters). A plugin that
    fails to load or to register is named in a warning and skipped: one broken package must
    not take the built-ins down with it. `entries` replaces the installed ones (tests)."""
    if entries is None:
        from importlib.metadata import entry_points

        entries = entry_points(group=group)
    loaded = []
    for ep in entries:
        try:
            register(ep.load())
        except Exception as exc:  # noqa: BLE001 - name the broken plugin, keep going
            plugin_failed(group, ep, exc)
            continue
        loaded.append(ep.name)
    return loaded


def plugin_failed(group: str, ep: PluginEntryPoint, exc: Exception) -> None:
    """The one warning for a plugin that did not load or register, in every registry and
    command: the distribution (what to upgrade or uninstall) and the entry point (what broke)."""
    dist = getattr(ep, "dist", None)
    package = f"{dist.name} {dist.version}" if dist is not None else "(unknown)"
    value = getattr(ep, "value", "")
    if not logging.root.handlers:  # `chaos validate` leaves logging unconfigured (start-up)
        logging.basicConfig(level=logging.WARNING, format="chaos: %(levelname)s: %(message)s")
    log.warning("plugin %s from distribution %s (entry point %s%s in group %s) failed to "
                "register: %s", ep.name, package, ep.name, f" = {value}" if value else "",
                group, exc)
