"""`--json` on run, validate and inject: stdout is exactly one JSON document, valid against the
JSON Schema published in docs/machine-output.md, whatever the exit code; the human lines (live
events, summaries, problems) are still there, on stderr. Each command runs as a subprocess, as
a CI script would run it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import psutil

from tests.conftest import EXPERIMENTS, ROOT, chaos_cmd, process_state, run_chaos, wait_until

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
    assert set(schemas()) == {"chaos.run/v1", "chaos.validate/v1", "chaos.inject/v1"}


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
        (row,) = json.loads(run_chaos("status", "--json", timeout=30).stdout)
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
