"""The --json documents scripts read: their shape, built from known journals and errors, and the
rule that exactly one document reaches stdout however the command ends (docs/machine-output.md).
"""

from __future__ import annotations

import io
import json
import sys
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any

import click
import pytest

from chaos.cli.machine import (INJECT, RUN, STATUS, VALIDATE, Collected, emit,
                               experiment_record, inject_document, one_document, problems,
                               run_document, status_document, validate_document)
from chaos.errors import ExperimentInvalid, Location, Problem

JOURNAL: dict[str, Any] = {
    "experiment": {"source": "experiments/quickstart.yaml", "title": "Demo answers"},
    "run": "r-7", "verdict": "held", "exit_code": 0, "reason": None, "duration": 9.5,
    "phases": {"before": {"checks": [{"check": "home >= 99%", "status": "PASS"}]},
               "after": {"checks": [{"check": "home >= 99%", "status": "FAIL"}]}},
    "injections": [{"id": "i-1"}, {"id": "i-2"}], "recovery": {"seconds": 1.5},
}

INVALID = ExperimentInvalid([Problem(Location("x.yaml", 3, 5), "faults[0].type", "unknown"),
                             Problem(None, "title", "required")], source="x.yaml")


def test_an_experiment_record_flattens_checks_with_their_phase(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    path.write_text("{}")
    assert experiment_record(JOURNAL, path) == {
        "source": "experiments/quickstart.yaml", "title": "Demo answers", "run": "r-7",
        "verdict": "held", "exit_code": 0, "reason": None, "duration": 9.5,
        "journal": str(path),
        "checks": [{"phase": "before", "check": "home >= 99%", "status": "PASS"},
                   {"phase": "after", "check": "home >= 99%", "status": "FAIL"}],
        "injections": [{"id": "i-1"}, {"id": "i-2"}], "recovery_seconds": 1.5}


def test_a_journal_that_was_not_written_is_null(tmp_path: Path) -> None:
    assert experiment_record(JOURNAL, tmp_path / "missing.json")["journal"] is None
    assert experiment_record(JOURNAL, None)["journal"] is None


def test_an_empty_journal_still_gives_every_field() -> None:
    record = experiment_record({}, None)
    assert (record["exit_code"], record["verdict"], record["checks"]) == (2, "None", [])


def test_problems_keep_their_location_or_the_files_name() -> None:
    assert problems(INVALID) == [
        {"file": "x.yaml", "line": 3, "column": 5, "path": "faults[0].type",
         "message": "unknown"},
        {"file": "x.yaml", "line": None, "column": None, "path": "title", "message": "required"}]


def test_the_run_document_lists_experiments_and_invalid_files() -> None:
    collected = Collected([experiment_record(JOURNAL, None)], [INVALID])
    document = run_document(1, None, collected)
    assert document["schema"] == RUN == "chaos.run/v1"
    assert [e["run"] for e in document["experiments"]] == ["r-7"]
    assert document["invalid"][0]["source"] == "x.yaml"
    assert len(document["invalid"][0]["problems"]) == 2


def test_the_validate_document_counts_and_converts_problems() -> None:
    document = validate_document(3, None, [{"file": "a.yaml", "valid": True, "problems": []},
                                           {"file": "x.yaml", "valid": False,
                                            "problems": INVALID}])
    assert (document["schema"], document["valid"], document["invalid"]) == (VALIDATE, 1, 1)
    assert document["files"][1]["problems"][0]["path"] == "faults[0].type"
    json.dumps(document)  # nothing left that JSON cannot hold


def test_the_inject_document_names_the_injections_of_the_last_run() -> None:
    document = inject_document(0, None, Collected([experiment_record(JOURNAL, None)]))
    assert (document["schema"], document["run"], document["injection_ids"]) == (
        INJECT, "r-7", ["i-1", "i-2"])
    empty = inject_document(3, "invalid", Collected([], [INVALID]))
    assert (empty["run"], empty["injection_ids"], len(empty["problems"])) == (None, [], 2)


@pytest.mark.parametrize(("alive", "orphaned"), [((True, True), False), ((True, False), True),
                                                 ((), False)])
def test_the_status_document_says_orphaned_when_a_runner_is_gone(alive: tuple[bool, ...],
                                                                 orphaned: bool) -> None:
    document = status_document(5 if orphaned else 0, Path("/state/ledger"),
                               [{"id": str(i), "runner_alive": a} for i, a in enumerate(alive)],
                               [{"line": 3}])
    assert (document["schema"], document["orphaned"]) == (STATUS, orphaned)
    assert document["ledger"] == "/state/ledger"
    assert document["quarantined"] == [{"line": 3}]


def test_emit_writes_one_indented_document_and_a_newline() -> None:
    out = io.StringIO()
    emit(out, {"b": Path("p"), "a": 1})
    assert out.getvalue() == '{\n  "b": "p",\n  "a": 1\n}\n'


def run_document_for(body: Any) -> tuple[dict[str, Any], str]:
    """What one_document prints on stdout and what went to stderr, when `body` ends."""
    out, err = io.StringIO(), io.StringIO()
    real = sys.stdout
    sys.stdout = out
    try:
        with redirect_stderr(err), pytest.raises(BaseException):
            with one_document(True, lambda code, error: {"exit_code": code, "error": error}):
                body()
    finally:
        sys.stdout = real
    return json.loads(out.getvalue()), err.getvalue()


def test_an_exit_code_is_carried_into_the_document_and_human_output_goes_to_stderr() -> None:
    def body() -> None:
        print("progress for humans")
        sys.exit(3)
    document, err = run_document_for(body)
    assert document == {"exit_code": 3, "error": None}
    assert err == "progress for humans\n"


def test_a_usage_error_is_exit_code_2_with_its_message() -> None:
    def body() -> None:
        raise click.UsageError("no such option: --fast")
    document, _ = run_document_for(body)
    assert document == {"exit_code": 2, "error": "no such option: --fast"}


def test_a_chaos_error_carries_its_own_exit_code() -> None:
    def body() -> None:
        raise INVALID
    document, _ = run_document_for(body)
    assert document == {"exit_code": int(INVALID.exit_code), "error": str(INVALID)}
    assert document["error"].startswith("x.yaml: 2 problems\n  x.yaml:3:5: faults[0].type")


def test_without_json_nothing_is_printed() -> None:
    out = io.StringIO()
    real, sys.stdout = sys.stdout, out
    try:
        with one_document(False, lambda code, error: {"never": True}):
            pass
    finally:
        sys.stdout = real
    assert out.getvalue() == ""


def test_a_click_failure_is_exit_code_2_not_1() -> None:
    def body() -> None:
        raise click.ClickException("cannot read that file")
    document, _ = run_document_for(body)
    assert document == {"exit_code": 2, "error": "cannot read that file"}
