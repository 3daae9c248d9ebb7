"""`chaos faults` and `chaos schema`: the catalogue and the file format, as a user reads them."""

from __future__ import annotations

import json

from tests.conftest import run_chaos

BUILT_INS = ("process.kill", "process.suspend", "service.restart")


def test_faults_lists_the_built_ins_with_targets_and_parameters() -> None:
    result = run_chaos("faults", timeout=30)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for name in BUILT_INS:
        assert f"{name}  -  " in text
    kill = text.split("process.kill  -  ", 1)[1].split("\n\n", 1)[0]
    assert "targets: process, service" in kill and "(instant)" in kill
    assert "with.signal:" in kill and "(default KILL)" in kill
    suspend = text.split("process.suspend  -  ", 1)[1].split("\n\n", 1)[0]
    assert "held for `duration`" in suspend
    assert "with.children: boolean (default False)" in suspend
    restart = text.split("service.restart  -  ", 1)[1].split("\n\n", 1)[0]
    assert "targets: service " in restart and "with.signal:" in restart


def test_faults_json_is_machine_readable() -> None:
    result = run_chaos("faults", "--json", timeout=30)
    assert result.returncode == 0, result.stderr
    catalogue = {entry["type"]: entry for entry in json.loads(result.stdout)}
    assert set(BUILT_INS) <= set(catalogue)
    kill = catalogue["process.kill"]
    assert kill["targets"] == ["process", "service"] and kill["instant"] is True
    (signal,) = kill["params"]
    assert signal["name"] == "signal" and signal["default"] == "KILL" and signal["doc"]
    assert "TERM" in signal["type"]
    suspend = catalogue["process.suspend"]
    assert suspend["instant"] is False
    assert [p["name"] for p in suspend["params"]] == ["children"]
    assert catalogue["service.restart"]["targets"] == ["service"]
    assert catalogue["process.suspend"]["adapters"] == ["local.process", "local.service"]


def test_schema_is_a_json_schema_of_experiment_files() -> None:
    result = run_chaos("schema", timeout=30)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"title", "faults", "hypothesis", "services", "limits"} <= set(schema["properties"])
    assert "title" in schema.get("required", [])
    fault = schema["properties"]["faults"]["items"]
    assert set(BUILT_INS) <= set(fault["properties"]["type"]["enum"])
    per_type = {rule["if"]["properties"]["type"]["const"]: rule["then"]
                for rule in fault["allOf"]}
    assert "signal" in per_type["process.kill"]["properties"]["with"]["properties"]
