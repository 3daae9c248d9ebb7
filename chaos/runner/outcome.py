"""How a run's outcome is settled once its faults are reverted.

The work's own outcome (held, deviated, aborted, interrupted) is checked against what actually
happened to the faults: a failed revert is exit 5 whatever else happened, a revert the ledger
could not record is exit 5 too (nobody should trust a ledger that still shows it open), a fault
that hit nothing never lets a run pass, and a fault someone else ended early is said so. Kept
apart from the engine so these rules are read, and tested, in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from chaos.errors import ExitCode, RevertFailed
from chaos.model.experiment import Experiment
from chaos.safety.ledger_protocol import LedgerStore

if TYPE_CHECKING:
    from chaos.runner.timeline import Injection

Outcome = tuple[ExitCode, str]


def failed_reverts(injections: Sequence[Injection], outcome: Outcome) -> Outcome:
    failed = [i for i in injections if i.outcome == "failed"]
    if not failed:
        return outcome
    return (ExitCode.REVERT_FAILED,
            "; ".join(f"revert of {i.fault.name} on {i.target.label} failed: {i.error}"
                      for i in failed))


def as_recorded(experiment: Experiment, injections: Sequence[Injection], outcome: Outcome,
                *, stopped: bool) -> Outcome:
    """The outcome, checked against what was injected: a fault that hit nothing never
    lets a run pass, and a fault someone else ended early is said so."""
    code, reason = outcome
    if code != ExitCode.OK and code != ExitCode.DEVIATED:
        return code, reason
    idle = [f.name for f in experiment.faults
            if not any(i.fault.index == f.index and i.injected_at is not None
                       for i in injections)]
    if code == ExitCode.OK and idle and not stopped:  # (not: stopped on purpose)
        return ExitCode.INVALID, (f"nothing was injected by {', '.join(idle)}: a fault that "
                                  "hits nothing proves nothing")
    early = [f"{i.fault.name} on {i.target.label} was reverted by {i.by} at "
             f"{i.reverted_at:.1f}s, before its planned end"
             for i in injections if i.by not in ("", "runner")
             and i.reverted_at is not None and i.reverted_at >= 0]
    if not early:
        return code, reason
    if code == ExitCode.OK and experiment.hypothesis is not None:
        # the checks held, but for a shorter fault than the experiment declares: that is not
        # the experiment that passed review, so it is no pass (a failure stays a failure)
        return ExitCode.ABORTED, ("the hypothesis was not tested for the faults' planned "
                                  "durations: " + "; ".join(early))
    return code, reason + "; " + "; ".join(early)


def unrecorded_reverts(ledger: LedgerStore, run: str) -> RevertFailed | None:
    """Reverted, but the ledger could not say so: exit 5, so nobody trusts a ledger that
    still shows the entries open, and `chaos recover` closes them once it can write."""
    missing = [u for u in ledger.unrecorded_of(run) if u.event != "finished"]
    if not missing:
        return None
    return RevertFailed(
        f"reverted, but could not record it in the ledger ({len(missing)} record(s) "
        f"missing): {missing[0].error}",
        hint="run `chaos recover` once the state dir is writable "
             f"({ledger.state_dir}); until then `chaos status` shows these "
             "injections as open")
