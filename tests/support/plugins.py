"""A third party's plugin, as the tests meet it: a report format, an adapter that records its
reverts, a marker-file fault with its adapter, target kind and probe kind, and entry points
that `load_plugins` takes without an installed distribution."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.plugin import (
    Adapter,
    AdapterRegistry,
    Collection,
    Duration,
    FaultRegistry,
    FaultSpec,
    FaultType,
    Field,
    Obj,
    Placement,
    ProbeKind,
    RevertOutcome,
    Scope,
    Str,
    TargetRef,
    new_fault_registry,
)


@dataclass(frozen=True)
class CountingReporter:
    """A report format from outside chaos: the number of journals and their titles."""

    name: str = "counts"
    filename: str = "counts.txt"
    summary: str = "how many experiments were reported"

    def render(self, collection: Collection, place: Placement) -> str:
        titles = [j["experiment"]["title"] for j in collection.journals]
        return f"{len(titles)} experiment(s): {', '.join(titles)}\n"


class RecordingRevertAdapter(Adapter):
    """Reverts nothing real; remembers every revert spec it was handed."""

    name = "plugin.recording"
    target_kind = "process"
    fault_types = ()

    def __init__(self) -> None:
        self.reverted: list[Mapping[str, Any]] = []

    async def resolve(self, fault: Any, scope: Any) -> list[Any]:
        return []

    def prepare(self, fault: Any, target: Any) -> dict[str, Any]:
        return {"adapter": self.name}

    async def inject(self, fault: Any, target: Any, spec: dict[str, Any],
                     scope: Any) -> dict[str, Any]:
        return spec

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        self.reverted.append(dict(spec))
        return "reverted"


@dataclass
class FakeEntryPoint:
    """What `importlib.metadata.entry_points()` yields, minus the installed distribution."""

    name: str
    target: Callable[..., Any]
    loaded: list[str] = field(default_factory=list)

    def load(self) -> Callable[..., Any]:
        self.loaded.append(self.name)
        return self.target


# --- a whole plugin: a target kind, a fault type and its adapter, a probe kind, for a run
# with fresh registries end to end (a marker file that exists while the fault holds)

MARKER_TARGET = Obj({"file": Field(Str("the marker file's path", min_length=1), required=True,
                                   flag="marker", help="the marker file to create")},
                    "a marker file on this machine")
MARKER_FAULT = FaultType(name="marker.place",
                         summary="create a marker file for the duration, then remove it",
                         params=Obj({"content": Str("what the file holds", "")}),
                         target_kinds=("marker",))


class MarkerAdapter(Adapter):
    """Creates the marker on inject, removes it on revert; remembers what it saw."""

    name = "plugin.marker"
    target_kind = "marker"
    fault_types = ("marker.place",)

    def __init__(self) -> None:
        self.injected: list[str] = []
        self.reverted: list[str] = []

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        path = str(fault.target.selector["file"])
        return [TargetRef("marker", path, {"path": path}, lock_key=f"marker:{path}")]

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        return {"adapter": self.name, "path": target.identity["path"]}

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        Path(spec["path"]).write_text(str(fault.params.get("content") or ""))
        self.injected.append(spec["path"])
        return spec

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        self.reverted.append(str(spec["path"]))
        Path(spec["path"]).unlink(missing_ok=True)
        return "reverted"


@dataclass
class MarkerProbe:
    """A probe kind that reports whether the marker exists; ok either way."""

    answers: list[str] = field(default_factory=list)

    async def ask(self, spec: Mapping[str, Any]) -> tuple[bool, str]:
        answer = "present" if Path(spec["file"]).exists() else "absent"
        self.answers.append(answer)
        return True, answer

    def kind(self) -> ProbeKind:
        return ProbeKind("marker_seen", Obj({
            "file": Str("the marker file's path"),
            "timeout": Duration("answer within this", "1s", min=0.001),
        }, "whether a marker file exists"), self.ask)


def register_marker(faults: FaultRegistry, adapters: AdapterRegistry) -> None:
    """The marker plugin's `chaos.plugins` entry point."""
    faults.add_target_kind("marker", MARKER_TARGET)
    faults.add(MARKER_FAULT)
    adapters.add(MarkerAdapter())


def marker_adapters() -> tuple[AdapterRegistry, MarkerAdapter]:
    """A fresh adapter registry (no built-in adapters) holding only the marker plugin."""
    adapters = AdapterRegistry(new_fault_registry())
    register_marker(adapters.faults, adapters)
    adapter = next(a for a in adapters if isinstance(a, MarkerAdapter))
    return adapters, adapter


def install_distribution(site: Path, module: str, code: str, entry_points: str) -> Path:
    """A real installed distribution for subprocesses: `module`.py and its dist-info directory
    (named after the module, version 1.0) in `site`, to put on PYTHONPATH; `entry_points` is
    the text of entry_points.txt. importlib.metadata sees it like any `pip install`."""
    (site / f"{module}.py").write_text(code)
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    return site
