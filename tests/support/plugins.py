"""A third party's plugin, as the tests meet it: a report format, an adapter that records its
reverts, and entry points that `load_plugins` takes without an installed distribution."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos.plugin import Adapter, Collection, Placement, RevertOutcome


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
