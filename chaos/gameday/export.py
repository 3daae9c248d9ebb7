"""A game day as Kubernetes manifests: a CronJob that runs `chaos gameday run` in the cluster.

ServiceAccount, a Role and RoleBinding per target namespace (the adapter's NAMESPACED_RULES), a
ClusterRole and binding when node faults need one (CLUSTER_RULES), a ConfigMap holding the
game-day file and its experiments, and the CronJob (schedule, timeZone, concurrencyPolicy
Forbid). The permissions come from chaos.adapters.kubernetes.rbac, the one list the adapter is
tested against; it is plain data, so this imports no Kubernetes client.

Files keep their relative layout under /etc/chaos/files (ConfigMap `items` put each key at its
path), so the game-day file is shipped as written - comments and `${VAR}` included, no secret
from this machine's environment baked in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chaos.adapters.kubernetes import rbac
from chaos.errors import UsageError
from chaos.model import source
from chaos.model.gameday import GameDay

DEFAULT_IMAGE = rbac.DEFAULT_IMAGE  # the chaos image (Dockerfile): the CLI and the in-pod agent
FILES_DIR = "/etc/chaos/files"
OUT_DIR = "/var/run/chaos"
MAX_CONFIGMAP = 1024 * 1024
PINNED_VERSION = "1.30.0"  # the Kubernetes version exports are validated against by default


def manifests(gameday: GameDay, *, namespace: str = "chaos", name: str | None = None,
              image: str = DEFAULT_IMAGE, target_namespaces: Sequence[str] = (),
              cluster_role: bool = False, fault_types: Sequence[str] = (),
              variables: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The manifests, in apply order. `fault_types` (of the loaded experiments) decides whether
    node faults need the ClusterRole; `cluster_role` forces it. `variables` (--var) are passed
    on to `chaos gameday run` in the CronJob, so the cluster runs what was checked here."""
    if gameday.schedule is None:
        raise UsageError(f"{gameday.source} has no schedule; a CronJob needs one",
                         hint="add `schedule: {cron: \"0 10 * * TUE\", timezone: Europe/Berlin}`")
    if name is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?", name):
        raise UsageError(f"--name {name!r} cannot name a CronJob",
                         hint="use at most 52 lowercase letters, digits and dashes, starting and "
                              "ending with a letter or digit (e.g. chaos-checkout)")
    docs, items, meta = supporting(gameday, namespace=namespace, name=name,
                                   target_namespaces=target_namespaces,
                                   cluster_role=cluster_role, fault_types=fault_types)
    name = meta["name"]
    docs.append(_cronjob(gameday, meta, name, image, items, variables or {}))
    return docs


def supporting(gameday: GameDay, *, namespace: str, name: str | None,
               target_namespaces: Sequence[str], cluster_role: bool,
               fault_types: Sequence[str]) -> tuple[list[dict[str, Any]], list[dict[str, str]],
                                                     dict[str, Any]]:
    """What runs the game day needs around it, whatever runs it (a CronJob here, an Argo
    workflow in chaos.gameday.argo): the ServiceAccount, the ConfigMap of its files and the
    RBAC; with the volume items and the shared metadata."""
    name = name or dns_name(f"chaos-{gameday.title}", 52)  # CronJob names: at most 52
    labels = {"app.kubernetes.io/name": "chaos", "app.kubernetes.io/component": "gameday",
              "app.kubernetes.io/instance": name}
    files, items = _files(gameday)
    meta = {"name": name, "namespace": namespace, "labels": labels}
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {**meta, "name": rbac.SERVICE_ACCOUNT}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": files},
    ]
    subject = {"kind": "ServiceAccount", "name": rbac.SERVICE_ACCOUNT, "namespace": namespace}
    for ns in target_namespaces or (namespace,):
        role_meta = {"name": rbac.ROLE_NAME, "namespace": ns, "labels": labels}
        docs += [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": role_meta,
             "rules": [_rule(r) for r in rbac.NAMESPACED_RULES]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": role_meta, "subjects": [subject],
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                         "name": rbac.ROLE_NAME}},
        ]
    if cluster_role or any(t.startswith("node.") for t in fault_types):
        cluster_meta = {"name": f"{rbac.CLUSTER_ROLE_NAME}-{namespace}"[:63], "labels": labels}
        docs += [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": cluster_meta, "rules": [_rule(r) for r in rbac.CLUSTER_RULES]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": cluster_meta, "subjects": [subject],
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": cluster_meta["name"]}},
        ]
    return docs, items, meta


def _cronjob(gameday: GameDay, meta: dict[str, Any], name: str, image: str,
             items: list[dict[str, str]], variables: Mapping[str, str]) -> dict[str, Any]:
    assert gameday.schedule is not None
    gameday_file = f"{FILES_DIR}/{items[0]['path']}"
    args = ["gameday", "run", gameday_file, "--out", OUT_DIR]
    for var, value in variables.items():
        args += ["--var", f"{var}={value}"]
    pod = {
        "serviceAccountName": rbac.SERVICE_ACCOUNT,
        "restartPolicy": "Never",
        # SIGTERM reverts at once; this is how long the kubelet waits before SIGKILL
        "terminationGracePeriodSeconds": 120,
        "containers": [{
            "name": "chaos", "image": image, "imagePullPolicy": "IfNotPresent",
            "args": args,
            "env": [{"name": "CHAOS_STATE_DIR", "value": f"{OUT_DIR}/state"}],
            "volumeMounts": [{"name": "files", "mountPath": FILES_DIR, "readOnly": True},
                             {"name": "out", "mountPath": OUT_DIR}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                          "limits": {"memory": "512Mi"}},
            "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                "runAsUser": 65532, "capabilities": {"drop": ["ALL"]}},
        }],
        "volumes": [{"name": "files", "configMap": {"name": name, "items": items}},
                    {"name": "out", "emptyDir": {}}],
    }
    return {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
        "spec": {
            "schedule": gameday.schedule.cron, "timeZone": gameday.schedule.timezone,
            "concurrencyPolicy": "Forbid", "startingDeadlineSeconds": 300,
            "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
            "jobTemplate": {"metadata": {"labels": meta["labels"]}, "spec": {
                "backoffLimit": 0,  # a failed game day is a result, not a reason to inject again
                "template": {"metadata": {"labels": meta["labels"]}, "spec": pod}}},
        },
    }


def _rule(rule: rbac.Rule) -> dict[str, list[str]]:
    return {k: list(v) for k, v in rule.items()}


def _files(gameday: GameDay) -> tuple[dict[str, str], list[dict[str, str]]]:
    """ConfigMap data and volume items: the game-day file first, then each experiment once,
    at their paths relative to the directory that holds them all.

    The layout follows the paths as written (not where symlinks lead): in the pod the game
    day's relative paths are resolved against the mounted copy, so each experiment must land
    where its path, as written, points. An absolute path cannot point into the mount."""
    for ref in gameday.experiments:
        if os.path.isabs(ref.file):
            where = f"{ref.location}: " if ref.location else f"{gameday.source}: "
            raise UsageError(f"{where}experiment {ref.file} is an absolute path, which does not "
                             f"exist in the CronJob's pod (its files are under {FILES_DIR})",
                             hint="write it relative to the game-day file, e.g. "
                                  "../experiments/x.yaml")
    day_file = Path(os.path.abspath(gameday.source))
    layout = {day_file: day_file}  # where it lands (as written) -> the file to read
    for ref in gameday.experiments:
        layout.setdefault(Path(os.path.normpath(day_file.parent / ref.file)), Path(ref.path))
    root = Path(os.path.commonpath([str(p.parent) for p in layout]))
    data: dict[str, str] = {}
    items = []
    for shown, real in layout.items():
        relative = shown.relative_to(root).as_posix()
        key = re.sub(r"[^-._a-zA-Z0-9]", "_", relative)
        while key in data:
            key = "_" + key
        data[key] = source.read(real).text
        items.append({"key": key, "path": relative})
    size = sum(len(v.encode()) for v in data.values())
    if size > MAX_CONFIGMAP:
        raise UsageError(f"the game day's files take {size // 1024} KiB; a ConfigMap holds "
                         "at most 1 MiB", hint="split the game day, or bake the files into "
                                                "the image and run `chaos gameday run` there")
    return data, items


def dns_name(text: str, limit: int = 63) -> str:
    """A DNS-1123 label from a title: lowercase letters, digits and dashes."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return name or "chaos-gameday"


def to_yaml(docs: Sequence[dict[str, Any]]) -> str:
    """Multi-document YAML; the files in the ConfigMap as readable blocks (`|`)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True  # shared label dicts are written out: kubectl users read these

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump_all(docs, Dumper=Dumper, sort_keys=False, width=100)


def validate(docs: Sequence[dict[str, Any]], version: str = PINNED_VERSION) -> list[str]:
    """Problems found by kubernetes-validate against the Kubernetes OpenAPI schema, offline."""
    import kubernetes_validate  # a test dependency; the CLI says how to get it
    from kubernetes_validate import utils

    known = sorted(set(utils.all_versions()), key=lambda v: tuple(int(x) for x in v.split(".")))
    if version not in known:
        raise UsageError(f"kubernetes-validate has no schema for Kubernetes {version}",
                         hint=f"use one of {known[0]} ... {known[-1]} (X.Y.0), e.g. "
                              f"--k8s-version {PINNED_VERSION}")
    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}")
    return problems
