"""What a Chaos Toolkit run is asked to do (its options) and what it returns (its result).

Kept apart from the engine so the CLI and `chaos.ctk.session` can build options and read
results without the engine's own imports; chaos.ctk.engine re-exports both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos.errors import ChaosError, ExitCode
from chaos.runner.engine import VERDICTS, Injection


@dataclass(frozen=True)
class CtkOptions:
    rollback_strategy: str | None = None  # None: the experiment's runtime section, else default
    hypothesis_strategy: str | None = None
    hypothesis_frequency: float | None = None
    fail_fast: bool | None = None
    config_vars: Mapping[str, Any] = field(default_factory=dict)
    secret_vars: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class CtkResult:
    run: str
    exit_code: ExitCode
    reason: str
    journal: dict[str, Any]  # Chaos Toolkit's journal format
    injections: list[Injection] = field(default_factory=list)
    error: ChaosError | None = None
    rollback_strategy: str = "default"
    hypothesis_strategy: str = "default"
    recovery: float | None = None  # journal fields a native run has
    detected: float | None = None

    @property
    def verdict(self) -> str:
        return VERDICTS[self.exit_code]
