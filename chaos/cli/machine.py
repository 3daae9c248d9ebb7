"""`--json`: one JSON document on stdout for scripts and CI, everything human on stderr.

`chaos run`, `validate` and `inject` keep printing what they print for people, but with `--json`
those lines (live events, summaries, problems) go to stderr and stdout carries exactly one
document when the command ends, whatever its exit code. Each document names its shape and
version in `schema` (`chaos.run/v1`, ...) like the journal does (`chaos.journal/v1`); a field is
only ever added within a version. The shapes are documented in docs/machine-output.md, and
tests check the documents against the JSON Schemas there.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from contextvars import ContextVar
from dataclasses import dataclass, field
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO, TypedDict, TypeVar

import click

from chaos.errors import ChaosError, ExitCode, ExperimentInvalid

F = TypeVar("F", bound=Callable[..., Any])

RUN = "chaos.run/v1"
VALIDATE = "chaos.validate/v1"
INJECT = "chaos.inject/v1"
STATUS = "chaos.status/v1"


class ProblemRecord(TypedDict):
    file: str | None
    line: int | None
    column: int | None
    path: str
    message: str


class ExperimentRecord(TypedDict):
    source: str
    title: str
    run: str | None
    verdict: str
    exit_code: int
    reason: str | None
    duration: float | None
    journal: str | None
    checks: list[dict[str, Any]]
    injections: list[dict[str, Any]]
    recovery_seconds: float | None


@dataclass
class Collected:
    """What the command did, gathered as it happens for the document printed at its end."""

    records: list[ExperimentRecord] = field(default_factory=list)
    invalid: list[ExperimentInvalid] = field(default_factory=list)


_COLLECTED: ContextVar[Collected | None] = ContextVar("chaos_machine_output", default=None)


def record(journal: Mapping[str, Any], path: Path | None) -> None:
    """A finished run, for the document (nothing happens without --json)."""
    collected = _COLLECTED.get()
    if collected is not None:
        collected.records.append(experiment_record(journal, path))


def record_invalid(exc: ExperimentInvalid) -> None:
    collected = _COLLECTED.get()
    if collected is not None:
        collected.invalid.append(exc)


def json_output(document: Callable[[int, str | None, Collected], Mapping[str, Any]]
                ) -> Callable[[F], F]:
    """Adds --json to a click callback: with it, the command's human output goes to stderr and
    `document(exit_code, error, collected)` to stdout when it ends."""
    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, as_json: bool = False, **kwargs: Any) -> Any:
            collected = Collected()
            token = _COLLECTED.set(collected if as_json else None)
            try:
                with one_document(as_json, lambda code, error: document(code, error,
                                                                          collected)):
                    return func(*args, **kwargs)
            finally:
                _COLLECTED.reset(token)
        return json_flag(wrapper)  # type: ignore[return-value]
    return decorate


def json_flag(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON document on stdout when done (shape: "
                             "docs/machine-output.md); progress and summaries go to stderr."
                        )(func)


@contextlib.contextmanager
def human_output_to_stderr(enabled: bool) -> Iterator[TextIO]:
    """Yields the real stdout; with `enabled`, everything else printed goes to stderr."""
    stdout = sys.stdout
    if not enabled:
        yield stdout
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield stdout


@contextlib.contextmanager
def one_document(enabled: bool, build: Callable[[int, str | None], Mapping[str, Any]]
                 ) -> Iterator[None]:
    """With `enabled`: human output to stderr, and when the command ends — by sys.exit, a
    usage error or any ChaosError — `build(exit_code, error)` printed on stdout."""
    if not enabled:
        yield
        return
    with human_output_to_stderr(True) as stdout:
        try:
            yield
        except SystemExit as done:
            emit(stdout, build(int(done.code or 0), None))
            raise
        except click.ClickException as exc:
            emit(stdout, build(exc.exit_code if exc.exit_code != 1 else 2, exc.format_message()))
            raise
        except ChaosError as exc:
            emit(stdout, build(int(exc.exit_code), str(exc)))
            raise
        except KeyboardInterrupt:  # outside a run (a run turns Ctrl-C into exit 130 itself)
            emit(stdout, build(int(ExitCode.INTERRUPTED), "interrupted"))
            raise
        emit(stdout, build(0, None))


def emit(stream: TextIO, document: Mapping[str, Any]) -> None:
    stream.write(json.dumps(document, indent=2, default=str) + "\n")
    stream.flush()


def problems(exc: ExperimentInvalid) -> list[ProblemRecord]:
    return [{"file": p.location.file if p.location else exc.source or None,
             "line": p.location.line if p.location else None,
             "column": p.location.column if p.location else None,
             "path": p.path, "message": p.message} for p in exc.problems]


def experiment_record(journal: Mapping[str, Any], path: Path | None) -> ExperimentRecord:
    """What a script needs of one run, from its journal (the journal has the rest)."""
    experiment = journal.get("experiment") or {}
    checks = [{"phase": phase, **check}
              for phase, body in (journal.get("phases") or {}).items()
              for check in body.get("checks", [])]
    recovery = journal.get("recovery") or {}
    return {"source": str(experiment.get("source", "")),
            "title": str(experiment.get("title", "")),
            "run": journal.get("run"), "verdict": str(journal.get("verdict")),
            "exit_code": int(journal.get("exit_code", 2)), "reason": journal.get("reason"),
            "duration": journal.get("duration"),
            "journal": str(path) if path is not None and path.exists() else None,
            "checks": checks, "injections": list(journal.get("injections") or []),
            "recovery_seconds": recovery.get("seconds")}


def run_document(exit_code: int, error: str | None, collected: Collected) -> dict[str, Any]:
    return {"schema": RUN, "exit_code": exit_code, "error": error,
            "experiments": list(collected.records),
            "invalid": [{"source": e.source, "problems": problems(e)}
                        for e in collected.invalid]}


def validate_document(exit_code: int, error: str | None,
                      files: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`files[].problems` may hold the ExperimentInvalid itself (converted here, so that
    `chaos validate` without --json never imports this module)."""
    return {"schema": VALIDATE, "exit_code": exit_code, "error": error,
            "valid": sum(1 for f in files if f["valid"]), "invalid":
            sum(1 for f in files if not f["valid"]),
            "files": [{**f, "problems": problems(f["problems"])}
                      if isinstance(f["problems"], ExperimentInvalid) else dict(f)
                      for f in files]}


def inject_document(exit_code: int, error: str | None, collected: Collected) -> dict[str, Any]:
    result = collected.records[-1] if collected.records else None
    return {"schema": INJECT, "exit_code": exit_code, "error": error,
            "run": result["run"] if result else None,
            "injection_ids": [i.get("id") for i in result["injections"]] if result else [],
            "result": result,
            "problems": [p for e in collected.invalid for p in problems(e)]}


def status_document(exit_code: int, ledger: Path, injections: Sequence[Mapping[str, Any]],
                    quarantined: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`orphaned` is what exit code 5 says, for a script that reads only the document."""
    return {"schema": STATUS, "exit_code": exit_code, "error": None, "ledger": str(ledger),
            "orphaned": any(not i["runner_alive"] for i in injections),
            "injections": [dict(i) for i in injections],
            "quarantined": [dict(q) for q in quarantined]}
