"""`chaos gameday export FILE --argo` writes a Workflow (a CronWorkflow for a game day with a
schedule) that validates offline against Argo's published JSON schema, closed so unknown fields
are errors (tests/fixtures/argo/README.md says where the schema comes from), with the RBAC the
pods need; its DAG follows the game day's steps and `stop_on`.
"""

from __future__ import annotations

import gzip
import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT, run_chaos

SCHEMA = ROOT / "tests" / "fixtures" / "argo" / "workflows-schema.json.gz"


@cache
def _definitions() -> dict[str, Any]:
    schema = json.loads(gzip.decompress(SCHEMA.read_bytes()))
    for definition in schema["definitions"].values():
        if definition.get("type") == "object" and "properties" in definition:
            definition.setdefault("additionalProperties", False)
    return dict(schema["definitions"])


def _problems(doc: dict[str, Any]) -> list[str]:
    schema = {"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{doc['kind']}",
              "definitions": _definitions()}
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}"
            for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]


def _export(path: Path, *args: str) -> list[dict[str, Any]]:
    result = run_chaos("gameday", "export", str(path), "--argo", "--k8s-version", "1.30.0",
                       *args, timeout=60)
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all(result.stdout))


def _tasks(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = workflow["spec"].get("workflowSpec", workflow["spec"])
    (dag,) = [t for t in spec["templates"] if t["name"] == spec["entrypoint"]]
    return {t["name"]: t for t in dag["dag"]["tasks"]}


def test_the_incident_rehearsal_exports_as_a_valid_workflow_with_its_rbac() -> None:
    docs = _export(ROOT / "gamedays" / "incident-rehearsal.yaml", "--var", "outage=3s")
    workflow = docs[-1]
    assert workflow["kind"] == "Workflow"
    assert _problems(workflow) == []
    spec = workflow["spec"]
    tasks = _tasks(workflow)
    names = list(tasks)
    group, later, last = names[:3], names[3:5], names[5:]
    assert [n.split("-", 1)[1] for n in later] == ["region-loss", "certificate-expiry"]
    assert [n.split("-", 1)[1] for n in last] == ["traffic-spike"]
    # the spike runs alone, after the whole second group
    assert tasks[last[0]]["depends"] == " && ".join(f"({t}.Succeeded || {t}.Failed)"
                                                    for t in later)
    # each parallel group is one DAG level; every task of the second waits for the whole first
    assert not any("depends" in tasks[t] for t in group)
    for task in later:
        assert tasks[task]["depends"] == " && ".join(f"({t}.Succeeded || {t}.Failed)"
                                                     for t in group)
        # stop_on: never still stops after a failed revert (exit 5), as `gameday run` does
        assert tasks[task]["when"] == " && ".join(f"{{{{tasks.{t}.exitCode}}}} != 5"
                                                  for t in group)
    third = later[0]
    templates = {t["name"]: t for t in spec["templates"]}
    args = templates[third]["container"]["args"]
    assert args[:2] == ["run", "/etc/chaos/files/experiments/scenarios/region-loss.yaml"]
    assert ["--var", "outage=3s"] == args[-2:]  # only the vars the experiment uses
    assert "--journal" in args and args[args.index("--journal") + 1].startswith(
        "/var/run/chaos/journals/")
    # the journals go to one volume every step mounts; the exit handler reports on them
    assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == "out"
    assert spec["onExit"] == "report"
    assert templates["report"]["container"]["args"][:2] == ["report", "/var/run/chaos/journals"]
    # the files the pods read and the RBAC: the adapter's Role and Argo's executor's
    kinds = [d["kind"] for d in docs]
    assert kinds[:2] == ["ServiceAccount", "ConfigMap"]
    configmap = docs[1]
    shipped = {item["path"] for item in spec["volumes"][0]["configMap"]["items"]}
    assert "experiments/scenarios/database-primary-failure.yaml" in shipped
    assert spec["volumes"][0]["configMap"]["name"] == configmap["metadata"]["name"]
    rules = [r for d in docs if d["kind"] == "Role" for r in d["rules"]]
    assert {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"],
            "verbs": ["create", "patch"]} in rules
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert {b["roleRef"]["name"] for b in bindings} == {
        d["metadata"]["name"] for d in docs if d["kind"] == "Role"}
    assert all(b["subjects"][0]["name"] == spec["serviceAccountName"] for b in bindings)


@pytest.mark.parametrize(("stop_on", "depends", "when"), [
    ("first_failure", "a.Succeeded", None),
    ("first_abort", "(a.Succeeded || a.Failed)",
     " && ".join(f"{{{{tasks.a.exitCode}}}} != {c}" for c in (4, 5, 130, 143))),
])
def test_a_scheduled_game_day_is_a_cron_workflow_whose_dag_follows_stop_on(
        tmp_path: Path, stop_on: str, depends: str, when: str | None) -> None:
    (tmp_path / "experiments").mkdir()
    shutil.copy(ROOT / "experiments" / "quickstart.yaml", tmp_path / "experiments")
    day = tmp_path / "gamedays" / "weekly.yaml"
    day.parent.mkdir()
    day.write_text("title: Weekly\nschedule: {cron: \"0 10 * * TUE\", timezone: "
                   "Europe/Berlin}\nexperiments:\n  - ../experiments/quickstart.yaml\n"
                   "  - ../experiments/quickstart.yaml\n"
                   f"stop_on: {stop_on}\n")
    cron = _export(day)[-1]
    assert cron["kind"] == "CronWorkflow" and _problems(cron) == []
    assert cron["spec"]["schedules"] == ["0 10 * * TUE"]
    assert cron["spec"]["timezone"] == "Europe/Berlin"
    first, second = _tasks(cron).values()
    a = first["name"]
    assert second["depends"] == depends.replace("a.", f"{a}.")
    assert second.get("when") == (when.replace("tasks.a.", f"tasks.{a}.") if when else None)


def test_the_closed_schema_refuses_a_misspelt_field() -> None:
    """The validation is not vacuous: what Argo would reject, it rejects."""
    docs = _export(ROOT / "gamedays" / "incident-rehearsal.yaml")
    workflow = docs[-1]
    next(iter(_tasks(workflow).values()))["dependz"] = "x"
    workflow["spec"]["entrypoint"] = 7
    problems = _problems(workflow)
    assert len(problems) == 2 and any("dependz" in p for p in problems), problems


def test_export_needs_one_target(tmp_path: Path) -> None:
    result = run_chaos("gameday", "export", str(ROOT / "gamedays" / "incident-rehearsal.yaml"),
                       timeout=60)
    assert result.returncode == 2 and "--argo" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_the_report_step_renders_the_journals_the_steps_left(tmp_path: Path,
                                                             state_dir: Path) -> None:
    """What the exit handler runs, on journals written as the steps write them (`--journal`
    into a directory that does not exist yet); an empty directory is refused in one line."""
    journals = tmp_path / "journals"
    for name in ("first", "second"):
        experiment = tmp_path / f"{name}.yaml"
        experiment.write_text(f"title: the {name} step\nhypothesis:\n  probes:\n"
                              "    - {name: ok, exec: {run: [\"true\"]}}\n"
                              "  before: {window: 300ms, every: 100ms}\n")
        ran = run_chaos("run", "-q", str(experiment), "--journal",
                        str(journals / f"e0{name == 'second' and 2 or 1}-{name}.json"))
        assert ran.returncode == 0, ran.stdout + ran.stderr
    docs = _export(ROOT / "gamedays" / "incident-rehearsal.yaml")
    spec = docs[-1]["spec"]
    (report,) = [t for t in spec["templates"] if t["name"] == spec["onExit"]]
    args = [str(journals) if a == "/var/run/chaos/journals" else
            str(tmp_path / "report") if a == "/var/run/chaos/report" else a
            for a in report["container"]["args"]]
    result = run_chaos(*args)
    assert result.returncode == 0, result.stderr
    markdown = next((tmp_path / "report").glob("*.md")).read_text()
    assert "the first step" in markdown and "the second step" in markdown, markdown
    (tmp_path / "empty").mkdir()
    empty = run_chaos("report", str(tmp_path / "empty"))
    assert empty.returncode == 2 and "no journal in" in empty.stderr, empty.stderr
    assert "Traceback" not in empty.stderr
