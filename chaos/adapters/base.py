"""The adapter interface: how a fault reaches a kind of target.

An adapter resolves a fault's target selector to concrete targets (with identities that survive
pid reuse), computes a *revert spec* before it touches anything, injects, and reverts from the
spec alone. The spec is plain JSON data carrying the adapter's name, so another process (the
watchdog, `chaos recover` after a reboot) can undo the injection without the runner's memory.

    resolve(fault, scope) -> [TargetRef]        what would be hit (dry-run stops here)
    prepare(fault, target) -> revert spec       written to the ledger before injecting
    inject(fault, target, spec) -> spec'        may refine the spec (e.g. a worker's pid)
    revert(spec) -> "reverted" | "gone"         idempotent; a vanished target counts as reverted

Inside an adapter the spec is a typed record (a `RevertSpec` subclass, one per adapter); at the
boundary to the engine and the ledger it is the record's `to_json()`, and `revert` parses what it
is given with `from_json()` first. Each record carries a version: a spec written by an older
chaos (no version: 1) is still read, one written by a newer chaos is refused by name.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, Self

from chaos.errors import RevertFailed
from chaos.model.experiment import FaultSpec

RevertOutcome = Literal["reverted", "gone", "nothing"]


@dataclass(frozen=True)
class TargetRef:
    kind: str
    label: str  # for people: "pid 4242 (python -m chaos.demo)"
    identity: Mapping[str, Any]  # for journals: survives pid reuse (pid + create time, UID)
    lock_key: str  # two runs may not hold the same key
    pids: tuple[int, ...] = field(default=())  # local processes this touches, for guards


@dataclass(frozen=True)
class RevertSpec(abc.ABC):
    """What an injection leaves in the ledger: enough for any process to undo it."""

    VERSION: ClassVar[int] = 1  # what this chaos writes; it reads every version up to this
    adapter: str  # the adapter that reverts it (revert dispatch goes by this name)

    def header(self) -> dict[str, Any]:
        return {"adapter": self.adapter, "version": self.VERSION}

    @abc.abstractmethod
    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    @abc.abstractmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self: ...

    @classmethod
    def check_version(cls, data: Mapping[str, Any]) -> int:
        """The spec's version (1 when it has none: written before versions were recorded);
        a version this chaos does not know is refused, naming the adapter and the version."""
        version = data.get("version", 1)
        if type(version) is not int or not 1 <= version <= cls.VERSION:
            raise RevertFailed(
                f"{data.get('adapter', cls.__name__)}: revert spec version {version!r} is not "
                f"one this chaos reads (up to {cls.VERSION})",
                hint="revert it with the chaos release that injected it (`chaos recover`)")
        return version


class Scope(Protocol):
    """What the runner offers adapters while resolving and injecting."""

    seed: int  # random choices (count, percent) derive from it; the journal records it
    run_id: str  # labels what a fault creates in a cluster, so a sweep can find it

    def service_pid(self, name: str) -> int | None: ...

    async def restart_service(self, name: str, signal_name: str | None) -> None: ...


class Adapter(abc.ABC):
    name: ClassVar[str]  # "local.process": recorded in every revert spec
    target_kind: ClassVar[str]
    fault_types: ClassVar[tuple[str, ...]]
    abstract: ClassVar[bool] = False  # base classes set True to stay out of registries
    # targets the experiment's own services may create (a `docker run` service starts a
    # container): matching nothing before the services start is no refusal; the fault resolves
    # its targets again when it starts, and refuses then
    created_by_services: ClassVar[bool] = False

    @abc.abstractmethod
    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]: ...

    @abc.abstractmethod
    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome: ...


class Registrar(Protocol):
    """What an adapter package's `register()` is handed: anything that takes adapters (the
    AdapterRegistry, or a test's), so the packages never import the registry above them."""

    def add(self, adapter: Adapter) -> Adapter: ...
