"""Where chaos keeps its state (ledger, locks, watchdog logs, proxy locators): one answer, used
by every layer, so the runner, its watchdog, `chaos recover` and the proxies agree."""

from __future__ import annotations

import os
from pathlib import Path


def default_state_dir() -> Path:
    explicit = os.environ.get("CHAOS_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "chaos"
