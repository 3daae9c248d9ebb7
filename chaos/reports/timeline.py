"""The incident as one row: when the fault went in, the first error, the alert, the service
answering again, the revert and the recovery, each relative to the first injection.

A game day's room reads one run at a time as a story ("the primary died at +0, writes failed
at +0.1, Sentinel promoted the replica at +5.3, the alert fired at +12"); the charts hold the
same facts but make people hunt for them. Every mark comes from the journal and none is
guessed: a run without an alert has no alert mark, one whose errors never stopped has no
"served again". Times of errors are as fine as the journal holds them: per 100 ms tick for a
short run (`fine_series`), else per second, and a mark says which.

"served again" is the first bucket without errors after the first error, across every probe
and the traffic that had errors: for a failover scenario (a database primary killed, a
replica promoted) it is the time to failover as the clients saw it. The journal holds no
structured failover fact of its own (a client's log does), so this is its honest generic form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chaos.records import RunRecord
from chaos.reports.analysis import Facts, Line

# the marks in the order an incident usually goes; a row shows them by time
KINDS = ("fault injected", "first error", "alert fired", "served again", "reverted",
         "recovered")


@dataclass(frozen=True)
class Mark:
    kind: str  # one of KINDS
    t: float  # seconds since the run started
    since: float  # seconds since the first injection (the label)
    about: str  # what it is and where it comes from (a tooltip, a hover)

    @property
    def label(self) -> str:
        return f"{self.kind} {since_text(self.since)}"


def since_text(seconds: float) -> str:
    """+4.3s; to the second past 100 s, where tenths are noise to a reader."""
    return f"{seconds:+.1f}s" if abs(seconds) < 100 else f"{seconds:+.0f}s"


def marks(f: Facts, journal: RunRecord) -> tuple[Mark, ...]:
    """The run's incident marks by time; none without an injection (nothing to count from)."""
    if not f.faults:
        return ()
    first = min(w.start for w in f.faults)
    fine = bool(f.fine_availability)
    lines, step = (f.fine_availability, f.fine_step or 1.0) if fine else (f.availability, 1.0)
    grain = f"{step * 1000:.0f} ms" if step < 1 else "1 s"
    found: list[tuple[str, float, str]] = [
        ("fault injected", first, "first injection: " + ", ".join(
            w.name for w in f.faults if w.start == first))]
    error = first_error(lines, step, first)
    if error is not None:
        found.append(("first error", error, f"first failed request after the injection "
                                            f"(resolution {grain})"))
        served = served_again(lines, step, error)
        if served is not None:
            found.append(("served again", served, "first bucket without errors after the "
                                                  f"first error, every source (resolution "
                                                  f"{grain}): the failover as clients saw it"))
    alert = _first_alert(f, journal)
    if alert is not None:
        found.append(("alert fired", alert[0], f"alert {alert[1]} fired"))
    # an instant fault (a kill) has nothing to revert: its `reverted_at` is when the engine
    # noted so, which the recovery counts from but nobody in the room would call a revert
    ended = [i for i in journal.injections if i.reverted_at is not None]
    reverted = [float(i.reverted_at or 0) for i in ended if i.outcome != "nothing"]
    if reverted:
        found.append(("reverted", max(reverted), "last fault reverted"))
    if ended and f.recover is not None:
        found.append(("recovered", max(float(i.reverted_at or 0) for i in ended) + f.recover,
                      "every check held again after the last revert"))
    out = [Mark(kind, t, t - first, about) for kind, t, about in found]
    return tuple(sorted(out, key=lambda m: (m.t, KINDS.index(m.kind))))


def first_error(lines: Sequence[Line], step: float, since: float) -> float | None:
    """The start of the first bucket with errors that ends after `since` (a bucket that began
    before the injection starts at the injection: no error of the fault came earlier)."""
    seen = [max(x, since) for line in lines for x, v in line.points
            if v < 1.0 and x + step > since + 1e-9]
    return min(seen) if seen else None


def served_again(lines: Sequence[Line], step: float, error: float) -> float | None:
    """The first bucket after `error` from which every source that had errors answers well;
    None while any of them never does."""
    again = []
    for line in lines:
        failing = [x for x, v in line.points if v < 1.0 and x + step > error + 1e-9]
        if not failing:
            continue
        good = [x for x, v in line.points if v >= 1.0 and x > failing[0]]
        if not good:
            return None
        again.append(good[0])
    return max(again) if again else None


def _first_alert(f: Facts, journal: RunRecord) -> tuple[float, str] | None:
    """The first alert that fired: the measured expectations' first firing, or an observed
    state change to firing."""
    fired = list(f.alert_marks) + [
        (float(e.get("at")), str(e.get("alert") or "alert")) for e in journal.events
        if e.name == "alert.observed" and e.get("state") == "firing" and
        isinstance(e.get("at"), int | float)]
    return min(fired) if fired else None


def summary_line(row: Sequence[Mark]) -> str:
    """The row as one line of text (the Markdown summary): `fault injected +0.0s · ...`."""
    return " · ".join(m.label for m in row)
