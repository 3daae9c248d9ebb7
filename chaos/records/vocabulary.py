"""The words a run leaves behind: journal schema version, run ids, run verdicts, check statuses.

Every reader of a journal (reports, game days, the Chaos Toolkit journal) and the runner that
writes it spell these the same way because they take them from here. A check's status is the
SLO grammar's own `Status` (PASS, FAIL, NO_DATA, INVALID, ERROR), named here for readers.
"""

from __future__ import annotations

import secrets
import time

from chaos.errors import ExitCode
from chaos.slo.checks import Status

SCHEMA = "chaos.journal/v1"
GAMEDAY_SCHEMA = "chaos.gameday/v1"

# the run verdict that goes with each exit code (docs/journal.md, "Top-level fields")
VERDICTS = {
    ExitCode.OK: "held", ExitCode.DEVIATED: "deviated", ExitCode.INVALID: "error",
    ExitCode.STEADY_STATE_NOT_MET: "steady-state-not-met", ExitCode.ABORTED: "aborted",
    ExitCode.REVERT_FAILED: "revert-failed", ExitCode.INTERRUPTED: "interrupted",
    ExitCode.TERMINATED: "interrupted",
}
# check statuses that count against a run in reports (everything but PASS)
FAILING = frozenset(s.value for s in Status if s is not Status.PASS)


def new_run_id() -> str:
    """The local start time plus six random hex digits: `20261127T044943-a24cb7`."""
    return time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


__all__ = ["FAILING", "GAMEDAY_SCHEMA", "SCHEMA", "VERDICTS", "Status", "new_run_id"]
