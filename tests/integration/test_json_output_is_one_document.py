"""`--json` on run, validate, inject and status: stdout is exactly one JSON document, valid
against the JSON Schema published in docs/machine-output.md, whatever the exit code; the human
lines (live events, summaries, problems) are still there, on stderr. Each command runs as a
subprocess, as a CI script would run it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import psutil

from chaos.safety.ledger import Ledger
from tests.conftest import (
    EXPERIMENTS, ROOT, chaos_cmd, process_state, run_chaos, wait_until)

DOC = ROOT / "docs" / "machine-output.md"


def schemas() -> dict[str, dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S)
    found = {}
    for block in blocks:
        schema = json.loads(block)
        jsonschema.Draft202012Validator.check_schema(schema)
        found[schema["title"]] = schema
    return found


def document(result: subprocess.CompletedProcess[str], kind: str) -> dict[str, Any]:
    doc = json.loads(result.stdout)  # one document: anything else on stdout fails here
    assert isinstance(doc, dict)
    jsonschema.validate(doc, schemas()[kind])
    assert doc["schema"] == kind and doc["exit_code"] == result.returncode
    return doc


def test_the_documented_schemas_cover_every_kind() -> None:
    assert set(schemas()) == {"chaos.run/v1", "chaos.validate/v1", "chaos.inject/v1",
                              "chaos.status/v1"}


def test_validate_reports_each_file_with_located_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXPERIMENTS / "quickstart.yaml").read_text()
                   .replace("duration: 3s", "duration: soon"))
    result = run_chaos("validate", "--json", str(EXPERIMENTS / "quickstart.yaml"), str(bad))
    assert result.returncode == 2
    doc = document(result, "chaos.validate/v1")
    assert (doc["valid"], doc["invalid"]) == (1, 1)
    good, wrong = doc["files"]
    assert good["valid"] and good["kind"] == "experiment" and good["faults"] == 1
    (problem,) = wrong["problems"]
    assert problem["path"] == "faults[0].duration" and problem["file"] == str(bad)
    line = bad.read_text().splitlines()[problem["line"] - 1]
    assert line[problem["column"] - 1:].startswith("soon")
    assert "faults[0].duration" in result.stderr  # the human message is still there


def test_validate_usage_errors_still_give_a_document() -> None:
    result = run_chaos("validate", "--json", str(EXPERIMENTS / "quickstart.yaml"),
                       "--var", "prot=1")
    assert result.returncode == 2
    doc = document(result, "chaos.validate/v1")
    assert "--var prot" in doc["error"] and "Traceback" not in result.stderr


def test_run_gives_verdicts_and_measured_values_and_keeps_progress_on_stderr(
        state_dir: Path, tmp_path: Path) -> None:
    result = run_chaos("run", "--json", str(EXPERIMENTS / "quickstart.yaml"), timeout=180)
    assert result.returncode == 0, result.stderr
    doc = document(result, "chaos.run/v1")
    (exp,) = doc["experiments"]
    assert exp["verdict"] == "held" and exp["exit_code"] == 0
    journal = json.loads(Path(exp["journal"]).read_text())
    assert journal["run"] == exp["run"]
    assert [i["id"] for i in journal["injections"]] == [i["id"] for i in exp["injections"]]
    phases = {c["phase"] for c in exp["checks"]}
    assert {"before", "after"} <= phases
    assert all(c["status"] == "PASS" and c["events"] > 0 for c in exp["checks"])
    assert exp["recovery_seconds"] is not None
    assert "phase before" in result.stderr and "HYPOTHESIS HELD" in result.stderr


def test_run_with_an_invalid_file_names_its_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\nfaults: []\nlimits: {max_targets: many}\n")
    result = run_chaos("run", "--json", str(bad))
    assert result.returncode == 2
    doc = document(result, "chaos.run/v1")
    assert doc["experiments"] == []
    (invalid,) = doc["invalid"]
    assert any(p["path"] == "limits.max_targets" for p in invalid["problems"])


def test_inject_gives_the_ids_chaos_stop_takes(state_dir: Path, sleeper: psutil.Process,
                                               tmp_path: Path) -> None:
    with open(tmp_path / "out.json", "w") as out, open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen(chaos_cmd("inject", "process.suspend", "--pid", str(sleeper.pid),
                                          "--for", "2s", "--json"),
                                cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                text=True)
        assert wait_until(lambda: process_state(sleeper.pid) == "T", 30) is not None
        held = run_chaos("status", "--json", timeout=60)
        (row,) = document(held, "chaos.status/v1")["injections"]
        assert row["runner_alive"] and row["fault"] == "process.suspend"
        assert proc.wait(60) == 0
    result = subprocess.CompletedProcess(proc.args, 0, (tmp_path / "out.json").read_text(),
                                         (tmp_path / "err.txt").read_text())
    doc = document(result, "chaos.inject/v1")
    assert doc["injection_ids"] == [row["id"]] and doc["run"] == row["run"]
    assert doc["result"]["verdict"] == "held"
    assert process_state(sleeper.pid) != "T"
    assert "INJECTED process.suspend" in result.stderr


def test_inject_refused_flags_are_problems(state_dir: Path) -> None:
    result = run_chaos("inject", "process.suspend", "--pid", "1", "--for", "later", "--json")
    assert result.returncode == 2
    doc = document(result, "chaos.inject/v1")
    assert doc["result"] is None and doc["injection_ids"] == []
    assert any(p["path"] == "faults[0].duration" for p in doc["problems"])


def test_status_names_orphaned_injections_and_quarantined_records(
        state_dir: Path, sleeper: psutil.Process) -> None:
    gone = subprocess.Popen(["true"])  # a runner that has exited
    gone.wait(30)
    ledger = Ledger(state_dir)
    ledger.start_run("orphan", pid=gone.pid, pid_create_time=1.0, title="orphan")
    ledger.intent("orphan", "orphan.0.0", fault="process.suspend", target=f"pid {sleeper.pid}",
                  revert={"adapter": "local.process", "action": "resume",
                          "processes": [{"pid": sleeper.pid,
                                         "create_time": sleeper.create_time()}]},
                  deadline=None)
    with open(ledger.path("orphan"), "a") as handle:  # a line no runner wrote
        handle.write(json.dumps({"v": 1, "ts": 1.0, "event": "intent", "run": "orphan",
                                 "id": "orphan.0.1", "revert": "kill -CONT 1"}) + "\n")
    result = run_chaos("status", "--json", timeout=60)
    assert result.returncode == 5, result.stdout + result.stderr
    doc = document(result, "chaos.status/v1")
    assert doc["orphaned"] is True and doc["ledger"] == str(ledger.directory)
    (row,) = doc["injections"]
    assert row["id"] == "orphan.0.0" and row["runner_alive"] is False
    assert row["runner_pid"] == gone.pid and f"pid {sleeper.pid}" in row["target"]
    (bad,) = doc["quarantined"]
    assert (bad["file"], bad["line"]) == (str(ledger.path("orphan")), 3), bad
    assert bad["may_hide_injection"] is True and bad["run"] == "orphan"
    assert f"{ledger.path('orphan')}:3" in result.stderr  # people still read it there
    assert run_chaos("recover", timeout=60).returncode == 5  # the unreadable line stays unknown
    empty = run_chaos("status", "--json", timeout=60)
    assert empty.returncode == 0 and document(empty, "chaos.status/v1")["injections"] == []
