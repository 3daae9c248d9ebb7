"""The probe kinds as one registry: what `chaos validate`, `chaos schema` and the sampler know.

A `ProbeKind` is a name, its parameter schema, the coroutine that asks the question, and a
default timeout declared once: as the schema's `timeout` default when the probe takes one
(the docs and the JSON Schema show it), else as `default_timeout`. Built-in kinds register with
the `builtin` decorator (chaos.slo.probe_runners); third parties publish a `ProbeKind` under the
`chaos.probes` entry-point group. Registration checks the declaration, so a broken plugin fails
when it registers, not halfway through an experiment. Registries are objects: tests and
`load_experiment(..., probes=...)` pass a fresh one, everything else the default.

Looking up entry points scans every installed package, which costs more than validating a file,
so the default registry loads plugins only when asked for a kind it does not know.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from chaos.model.schema import Obj, OneOf, Schema, Str
from chaos.units import parse_duration

PLUGIN_GROUP = "chaos.probes"
_NAME = re.compile(r"[a-z][a-z0-9_-]*")

# (ok, detail): a probe's answer; raise ProbeError for a probe that cannot be asked at all
Runner = Callable[[Mapping[str, Any]], Awaitable[tuple[bool, str]]]
COMMON = {"name": Str("name used in checks", pattern=r"[A-Za-z0-9_-]+")}


@dataclass(frozen=True)
class ProbeKind:
    name: str
    params: Obj
    run: Runner
    default_timeout: float | None = None  # only when `params` has no `timeout` field
    cluster: bool = False  # its spec carries the experiment's `kubernetes:` section
    # one-time setup (imports) before the first timed sample: the sampler calls it, so that
    # the first sample does not count the runner's imports as the service's latency
    prepare: Callable[[], None] | None = None

    @property
    def timeout(self) -> float:
        """The default timeout, from wherever it was declared."""
        field = self.params.fields.get("timeout")
        default = getattr(field.schema, "default", None) if field is not None else None
        if default is not None:
            return parse_duration(default)
        assert self.default_timeout is not None, "checked at registration"
        return self.default_timeout


class ProbeKinds:
    """The registry. A mapping view of the schemas (`schemas`) feeds the loader's `OneOf`."""

    def __init__(self, *, plugins: bool = False) -> None:
        self._kinds: dict[str, ProbeKind] = {}
        self._plugins_pending = plugins

    def add(self, kind: ProbeKind) -> ProbeKind:
        if not _NAME.fullmatch(kind.name):
            raise ValueError(f"probe kind {kind.name!r}: use lower case letters, digits, - or _")
        if kind.name in self._kinds or kind.name in COMMON:
            raise ValueError(f"probe kind {kind.name!r} is already registered")
        if not isinstance(kind.params, Obj):
            raise TypeError(f"probe kind {kind.name!r}: params must be an Obj schema")
        for key, spec in kind.params.fields.items():
            if not spec.schema.doc:
                raise ValueError(f"probe kind {kind.name!r}: parameter {key!r} needs a doc")
        if not inspect.iscoroutinefunction(kind.run):
            raise TypeError(f"probe kind {kind.name!r}: run must be an async function")
        field = kind.params.fields.get("timeout")
        declared = field is not None and getattr(field.schema, "default", None) is not None
        if declared == (kind.default_timeout is not None):
            raise ValueError(f"probe kind {kind.name!r}: declare the default timeout once, "
                             "as the `timeout` parameter's default or as default_timeout")
        if kind.timeout <= 0:
            raise ValueError(f"probe kind {kind.name!r}: the default timeout must be positive")
        self._kinds[kind.name] = kind
        return kind

    def get(self, name: str) -> ProbeKind:
        """The kind; KeyError when neither built in nor a plugin's."""
        if name not in self._kinds:
            self._load_plugins()
        return self._kinds[name]

    def __contains__(self, name: object) -> bool:
        if name not in self._kinds and name not in COMMON:
            self._load_plugins()
        return name in self._kinds

    def __iter__(self) -> Iterator[ProbeKind]:
        self._load_plugins()
        return iter(list(self._kinds.values()))  # registration order: the docs' order

    @property
    def schemas(self) -> Mapping[str, Schema]:
        return _Schemas(self)

    def schema(self) -> OneOf:
        """The probe section of experiment files."""
        return OneOf(self.schemas, "a probe", common=COMMON)

    def _load_plugins(self) -> None:
        # importlib.metadata costs validation ~15 ms: only when a plugin is looked for
        from importlib.metadata import entry_points

        from chaos.faults.registry import plugin_failed

        if not self._plugins_pending:
            return
        self._plugins_pending = False
        for ep in entry_points(group=PLUGIN_GROUP):
            try:
                kind = ep.load()
                if not isinstance(kind, ProbeKind):
                    raise TypeError(f"{ep.value} is not a ProbeKind")
                self.add(kind)
            except Exception as exc:  # noqa: BLE001 - name the broken plugin, keep going
                plugin_failed(PLUGIN_GROUP, ep, exc)


class _Schemas(Mapping[str, Schema]):
    """The registry's schemas, read through so that a plugin kind is found on a miss."""

    def __init__(self, kinds: ProbeKinds) -> None:
        self._kinds = kinds

    def __getitem__(self, name: str) -> Schema:
        return self._kinds.get(name).params

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[str]:
        return (kind.name for kind in self._kinds)

    def __len__(self) -> int:
        return sum(1 for _ in self._kinds)


_BUILTIN: list[ProbeKind] = []


def builtin(name: str, params: Obj, *, default_timeout: float | None = None,
            cluster: bool = False,
            prepare: Callable[[], None] | None = None) -> Callable[[Runner], Runner]:
    """Declare a built-in probe kind on its runner; `new_probe_kinds()` registers them."""
    def register(run: Runner) -> Runner:
        _BUILTIN.append(ProbeKind(name, params, run, default_timeout, cluster, prepare))
        return run
    return register


def new_probe_kinds(*, plugins: bool = False) -> ProbeKinds:
    """A registry of the built-in kinds (and, if asked, the installed plugins' on demand)."""
    import chaos.slo.probe_runners  # noqa: F401 - its decorators declare the built-ins

    kinds = ProbeKinds(plugins=plugins)
    for kind in _BUILTIN:
        kinds.add(kind)
    return kinds


@lru_cache(maxsize=1)
def default_probe_kinds() -> ProbeKinds:
    return new_probe_kinds(plugins=True)
