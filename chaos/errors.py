"""The exception tree and the exit codes it maps to.

    ChaosError                      anything we raise on purpose; carries `hint` (what to do)
    ├── UsageError                  bad command line (exit 2)
    ├── ExperimentInvalid           the file is wrong; carries every Problem at once (exit 2)
    ├── TargetNotFound              a selector matched nothing / a service is not declared (exit 2)
    ├── GuardRefused                a safety guard refuses the plan: PID 1, the runner, too many
    │   └── TargetLocked            targets, another run holds the target (exit 2)
    ├── PermissionDenied            the OS or an API refused us (exit 2)
    ├── FaultFailed                 an injection failed; everything else is reverted (exit 4)
    ├── RevertFailed                something may still be injected (exit 5)
    ├── StateDirUnusable            the ledger in the state dir cannot be written: nothing is
    │                               injected without a durable intent (exit 2)
    ├── ProbeError                  a probe is misconfigured (not: the probe failed) (exit 2)
    └── ServiceFailed               a declared service did not start or become ready (exit 2)
        └── PortInUse               its readiness address answered before it was started

The CLI catches `ChaosError` once, prints `str(error)` and `error.hint`, and exits with
`error.exit_code`. Adapters map backend errors at their boundary with `raise ... from exc`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    """Exit codes, the contract with CI systems (README and `chaos run --help` list them)."""

    OK = 0  # hypothesis held
    DEVIATED = 1  # hypothesis failed
    INVALID = 2  # invalid input or usage, or a guard refused the plan
    STEADY_STATE_NOT_MET = 3  # steady state not met before injection: nothing injected
    ABORTED = 4  # aborted by a guardrail (or a failed injection): everything reverted
    REVERT_FAILED = 5  # a revert failed: something may still be injected
    INTERRUPTED = 130  # SIGINT, everything reverted
    TERMINATED = 143  # SIGTERM, everything reverted


EXIT_CODE_HELP = """Exit codes:
  0    hypothesis held
  1    hypothesis failed (the system deviated, or an expected alert missed / a forbidden one fired)
  2    invalid input or usage, a safety guard refused the plan, or the measurement (or the
       alert detection) could not be trusted
  3    steady state not met before injection (nothing was injected)
  4    aborted by a guardrail or a failed injection (everything reverted)
  5    a revert failed (something may still be injected: see `chaos status`)
  130  interrupted by SIGINT (everything reverted)
  143  terminated by SIGTERM (everything reverted)"""

# When several experiments run (`chaos run` with several files, a game day), the exit code is
# the most serious of theirs, in this order.
SEVERITY = (ExitCode.REVERT_FAILED, ExitCode.TERMINATED, ExitCode.INTERRUPTED, ExitCode.ABORTED,
            ExitCode.INVALID, ExitCode.STEADY_STATE_NOT_MET, ExitCode.DEVIATED, ExitCode.OK)


def most_serious(codes: list[int]) -> int:
    return min(codes, key=lambda c: SEVERITY.index(ExitCode(c))) if codes else ExitCode.OK


MAX_DETAIL = 300


def truncate(text: str, limit: int = MAX_DETAIL) -> str:
    """Cut backend messages so bodies (and secrets inside them) never flood logs."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ChaosError(Exception):
    exit_code: ExitCode = ExitCode.INVALID
    hint: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint


class UsageError(ChaosError):
    pass


@dataclass(frozen=True)
class Location:
    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file: where, which field, what was expected."""

    location: Location | None
    path: str  # e.g. faults[1].with.delay
    message: str

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        field = f"{self.path}: " if self.path else ""
        return f"{where}{field}{self.message}"


class ExperimentInvalid(ChaosError):
    hint = "fix the fields named above; `chaos validate FILE` checks a file without running it"

    def __init__(self, problems: list[Problem], *, source: str = "") -> None:
        self.problems = tuple(problems)
        self.source = source
        count = len(self.problems)
        head = f"{source}: " if source else ""
        super().__init__(f"{head}{count} problem{'s' if count != 1 else ''}")

    def __str__(self) -> str:
        lines = [super().__str__()] + [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class TargetNotFound(ChaosError):
    hint = "check the target selector; `chaos run --dry-run FILE` shows what it resolves to"


class GuardRefused(ChaosError):
    pass


class TargetLocked(GuardRefused):
    hint = "another chaos run holds this target; `chaos status` shows it, `chaos stop` ends it"


class PermissionDenied(ChaosError):
    hint = "run as the target's owner or as root, or pick a target you own"


class FaultFailed(ChaosError):
    exit_code = ExitCode.ABORTED


class RevertFailed(ChaosError):
    exit_code = ExitCode.REVERT_FAILED
    hint = "`chaos status` lists what is still injected; `chaos recover` retries the reverts"


class StateDirUnusable(ChaosError):
    """A ledger record could not be made durable (disk full, read-only, no permission).

    Raised before an injection, it refuses the fault; the records that close an entry are
    never allowed to raise this far (see chaos.safety.recover)."""

    def __init__(self, message: str, *, directory: str, errno_name: str = "") -> None:
        self.directory, self.errno_name = directory, errno_name
        super().__init__(message, hint=_state_dir_hint(directory, errno_name))


def _state_dir_hint(directory: str, errno_name: str) -> str:
    fix = {
        "ENOSPC": f"free space on the filesystem holding {directory} (`df -h {directory}`)",
        "EDQUOT": f"free space within your disk quota for {directory}",
        "EROFS": f"remount the filesystem holding {directory} read-write",
        "EACCES": f"make {directory} writable for this user",
        "EPERM": f"make {directory} writable for this user",
    }.get(errno_name, f"make {directory} writable, with free space")
    return (f"{fix}, or point CHAOS_STATE_DIR (or --state-dir) at a writable directory; "
            "`chaos status` then shows whether anything is still injected")


class ProbeError(ChaosError):
    pass


class ServiceFailed(ChaosError):
    hint = "the service's output is saved next to the journal; run its command by hand to see why"


class PortInUse(ServiceFailed):
    hint = "stop the process that holds the port, or give the service another one"
