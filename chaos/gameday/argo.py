"""A game day as an Argo Workflows Workflow (or CronWorkflow): for game days larger than one
machine, Argo runs the graph the local scheduler would, one pod per experiment.

Each experiment is a DAG task whose pod runs `chaos run` on it (its own journal, its own ledger:
one experiment = one process = one pod); a `parallel:` group is one DAG level; `stop_on` becomes
the dependencies between levels (`depends` on the tasks' phases, `when` on their exit codes);
the journals go to a volume the steps share (`volumeClaimTemplates`), and an exit handler
builds the game-day report from whatever journals exist, however the DAG ended. The RBAC is the
CronJob export's (chaos.gameday.export) plus what Argo's executor needs in the namespace.
Validated offline against Argo's published JSON schema by the tests (tests/fixtures/argo/).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from chaos.adapters.kubernetes import rbac
from chaos.gameday import export
from chaos.gameday.run import experiment_vars, passed_vars
from chaos.model.gameday import GameDay

JOURNALS = f"{export.OUT_DIR}/journals"
REPORT = f"{export.OUT_DIR}/report"
# Argo's executor records each step's outputs as a WorkflowTaskResult (Argo >= 3.4)
EXECUTOR_RULES = [{"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"],
                   "verbs": ["create", "patch"]}]
# exits that stop the next levels: `chaos gameday run` stops on the same (docs/gamedays.md)
STOPS = {"never": (5,), "first_failure": None, "first_abort": (4, 5, 130, 143)}


def manifests(gameday: GameDay, *, namespace: str = "chaos", name: str | None = None,
              image: str = export.DEFAULT_IMAGE, target_namespaces: Sequence[str] = (),
              cluster_role: bool = False, fault_types: Sequence[str] = (),
              variables: Mapping[str, str] | None = None, storage: str = "1Gi",
              ) -> list[dict[str, Any]]:
    """ServiceAccount, ConfigMap, RBAC (as for the CronJob, plus Argo's executor Role), then
    a CronWorkflow if the game day has a schedule, else a Workflow."""
    docs, items, meta = export.supporting(gameday, namespace=namespace, name=name,
                                          target_namespaces=target_namespaces,
                                          cluster_role=cluster_role, fault_types=fault_types)
    executor = {**meta, "name": "chaos-argo-executor"}
    docs += [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": executor,
         "rules": EXECUTOR_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": executor,
         "subjects": [{"kind": "ServiceAccount", "name": rbac.SERVICE_ACCOUNT,
                       "namespace": namespace}],
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": executor["name"]}},
    ]
    spec = _workflow_spec(gameday, meta["name"], image, items, variables or {}, storage)
    labels = meta["labels"]
    if gameday.schedule is None:
        docs.append({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                     "metadata": {"generateName": f"{meta['name']}-", "namespace": namespace,
                                  "labels": labels},
                     "spec": spec})
    else:
        docs.append({"apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow",
                     "metadata": meta,
                     "spec": {"schedules": [gameday.schedule.cron],
                              "timezone": gameday.schedule.timezone,
                              "concurrencyPolicy": "Forbid", "startingDeadlineSeconds": 300,
                              "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
                              "workflowMetadata": {"labels": labels},
                              "workflowSpec": spec}})
    return docs


def _workflow_spec(gameday: GameDay, name: str, image: str, items: list[dict[str, str]],
                   variables: Mapping[str, str], storage: str) -> dict[str, Any]:
    day_in_pod = os.path.dirname(f"{export.FILES_DIR}/{items[0]['path']}")
    templates: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    previous: list[str] = []
    index = 0
    for step in gameday.steps:
        level = []
        for ref in step.experiments:
            index += 1
            stem = os.path.basename(ref.file).rsplit(".", 1)[0]
            task = f"e{index:02d}-{export.dns_name(stem, 40)}"
            args = ["run", os.path.normpath(os.path.join(day_in_pod, ref.file)), "-q",
                    "--journal", f"{JOURNALS}/{task}.json", "--runs-dir", f"{export.OUT_DIR}/runs",
                    "--state-dir", f"{export.OUT_DIR}/state-{task}"]
            for var, value in passed_vars(ref.path, experiment_vars(gameday, ref,
                                                                    variables)).items():
                args += ["--var", f"{var}={value}"]
            templates.append({"name": task, "container": _container(image, args)})
            tasks.append({"name": task, "template": task, **_after(previous, gameday.stop_on)})
            level.append(task)
        previous = level
    report = ["report", JOURNALS, "--format", "all", "-o", REPORT]
    return {
        "entrypoint": "gameday",
        "onExit": "report",  # the report is built however the DAG ended
        "serviceAccountName": rbac.SERVICE_ACCOUNT,
        "podGC": {"strategy": "OnWorkflowSuccess"},
        "activeDeadlineSeconds": 6 * 3600,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "fsGroup": 65532},
        "volumes": [{"name": "files", "configMap": {"name": name, "items": items}}],
        "volumeClaimTemplates": [{"metadata": {"name": "out"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}}],
        "templates": [{"name": "gameday", "dag": {"tasks": tasks}}, *templates,
                      {"name": "report", "container": _container(image, report)}],
    }


def _after(previous: list[str], stop_on: str) -> dict[str, str]:
    """The task runs once every task of the previous level ended, as `stop_on` allows: its
    phase (`Failed` is a non-zero exit) in `depends`, the exits that stop in `when`."""
    if not previous:
        return {}
    stops = STOPS[stop_on]
    if stops is None:  # first_failure: only after every one succeeded
        return {"depends": " && ".join(f"{t}.Succeeded" for t in previous)}
    depends = " && ".join(f"({t}.Succeeded || {t}.Failed)" for t in previous)
    when = " && ".join(f"{{{{tasks.{t}.exitCode}}}} != {code}" for t in previous
                       for code in stops)
    return {"depends": depends, "when": when}


def _container(image: str, args: list[str]) -> dict[str, Any]:
    return {
        "image": image, "imagePullPolicy": "IfNotPresent", "args": args,
        "volumeMounts": [{"name": "files", "mountPath": export.FILES_DIR, "readOnly": True},
                         {"name": "out", "mountPath": export.OUT_DIR}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"memory": "512Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
    }
