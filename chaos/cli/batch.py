"""What `chaos run` and `chaos gameday run` do across several experiments: pick them by tag,
stop at the first that does not hold (`-x`), and end with one total line.

The total line counts exit codes, not journal verdicts, so it agrees with the exit code CI sees
(`5 experiments: 3 held, 1 failed, 1 invalid in 2m13s`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

from chaos.errors import ExitCode
from chaos.units import format_duration

F = TypeVar("F", bound=Callable[..., Any])

# exit code -> the word for it in the total line, in the order the line lists them
OUTCOMES = {ExitCode.OK: "held", ExitCode.DEVIATED: "failed", ExitCode.INVALID: "invalid",
            ExitCode.STEADY_STATE_NOT_MET: "not steady before", ExitCode.ABORTED: "aborted",
            ExitCode.REVERT_FAILED: "REVERT FAILED", ExitCode.INTERRUPTED: "interrupted",
            ExitCode.TERMINATED: "interrupted"}


def selection(func: F) -> F:
    """--tag / --exclude-tag, as pytest's -m and k6's tags are used: run a subset of a directory."""
    func = click.option("--exclude-tag", "exclude_tags", multiple=True, metavar="TAG",
                        help="Skip experiments with this tag (repeatable; wins over --tag).")(func)
    return click.option("--tag", "tags", multiple=True, metavar="TAG",
                        help="Run only experiments with this tag (repeatable: any of them)."
                        )(func)


def tags_of(experiment: Any) -> set[str]:
    return {str(tag) for tag in (getattr(experiment, "tags", None) or ())}


def select(experiments: Sequence[Any], tags: Iterable[str],
           exclude: Iterable[str]) -> list[Any]:
    wanted, unwanted = set(tags), set(exclude)
    return [e for e in experiments
            if (not wanted or tags_of(e) & wanted) and not tags_of(e) & unwanted]


def refuse_empty(experiments: Sequence[Any], chosen: Sequence[Any], tags: Sequence[str],
                 exclude: Sequence[str]) -> None:
    """Selecting nothing is a mistake (a tag typo), not a green build: exit 2, with the tags
    the files do carry."""
    if chosen or not experiments:
        return
    from chaos.model.walk import suggest

    known = sorted(set().union(*(tags_of(e) for e in experiments)))
    typo = next((suggest(t, known) for t in tags if t not in known and suggest(t, known)), "")
    asked = " ".join([*(f"--tag {t}" for t in tags), *(f"--exclude-tag {t}" for t in exclude)])
    raise click.UsageError(f"{asked} selects none of the {len(experiments)} experiments{typo} "
                           f"(their tags: {', '.join(known) or 'none'})")


def total_line(codes: Sequence[int], seconds: float, skipped: int = 0) -> str:
    counts: dict[str, int] = {}
    for code in codes:
        word = OUTCOMES.get(ExitCode(code) if code in ExitCode._value2member_map_ else
                            ExitCode.INVALID, "error")
        counts[word] = counts.get(word, 0) + 1
    parts = [f"{n} {word}" for word, n in counts.items()]
    parts.sort(key=lambda p: list(dict.fromkeys(OUTCOMES.values())).index(p.split(" ", 1)[1]))
    if skipped:
        parts.append(f"{skipped} not run")
    n = len(codes) + skipped
    return (f"{n} experiment{'' if n == 1 else 's'}: {', '.join(parts)} "
            f"in {format_duration(round(seconds) if seconds >= 1 else seconds)}")


def stops_here(code: int, fail_fast: bool | None) -> bool:
    """After this experiment, run no more: the user asked to stop, or -x and it did not hold."""
    return code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED) or bool(fail_fast and code)
