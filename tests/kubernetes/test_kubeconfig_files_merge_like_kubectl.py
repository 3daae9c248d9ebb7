"""$KUBECONFIG naming several files works as under kubectl: the files are merged (a context in
one, its cluster and user in another), the current context is the first one a file sets, and
files that do not exist are skipped. The fault and its revert both reach the emulator."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from chaos.adapters.kubernetes.connection import ClusterUnreachable, Connection
from chaos.adapters.kubernetes.probes import ready_pods
from tests.conftest import run_chaos
from tests.kubernetes.conftest import add_workload, calls, wait_ready
from tests.support.kubernetes.emulator import DEPLOYMENTS, Emulator


def split_kubeconfig(k8s: Emulator, tmp_path: Path) -> str:
    """contexts.yaml: the emulator's context, current; cluster.yaml: its cluster and user, and
    a current context of its own (a dead cluster) that must lose to the first file's."""
    contexts = tmp_path / "contexts.yaml"
    contexts.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "tester",
                                                      "namespace": "shop"}}]}))
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "dead",
        "clusters": [{"name": "emulator", "cluster": {"server": k8s.url}},
                     {"name": "dead", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "tester"}}]}))
    return os.pathsep.join([str(tmp_path / "missing.yaml"), str(contexts), str(cluster)])


def test_the_connection_names_every_existing_file_and_the_first_current_context(
        k8s: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", split_kubeconfig(k8s, tmp_path))
    conn = Connection.from_settings({})
    assert conn.kubeconfig == os.pathsep.join([str(tmp_path / "contexts.yaml"),
                                               str(tmp_path / "cluster.yaml")])
    assert conn.context == "emulator"
    assert conn.default_namespace() == "shop"


def test_a_fault_and_its_revert_reach_the_cluster_of_merged_files(
        k8s: Emulator, tmp_path: Path, state_dir: Path) -> None:
    add_workload(k8s, "api", replicas=2)
    wait_ready(k8s, "shop", "api", 2)
    result = run_chaos("inject", "workload.scale_down", "--deployment", "api",
                       "--replicas", "0", "--for", "300ms",
                       env={"KUBECONFIG": split_kubeconfig(k8s, tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert [c.body["spec"]["replicas"] for c in calls(k8s, "patch", "deployments/scale")] == [0, 2]
    assert k8s.call(lambda c: c.get(DEPLOYMENTS, "shop", "api"))["spec"]["replicas"] == 2


def test_an_empty_file_is_skipped_as_kubectl_skips_it(
        k8s: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `touch ~/.kube/config` is common; the Python client refuses an empty file in the list
    (tmp_path / "empty.yaml").write_text("")
    files = split_kubeconfig(k8s, tmp_path)
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "empty.yaml"), files]))
    conn = Connection.from_settings({})
    assert str(tmp_path / "empty.yaml") not in conn.kubeconfig.split(os.pathsep)
    assert (conn.context, conn.default_namespace()) == ("emulator", "shop")
    add_workload(k8s, "api", replicas=1)
    wait_ready(k8s, "shop", "api", 1)
    assert asyncio.run(ready_pods({"labels": {"app": "api"}}, {}))[0]  # the merged files' API


def test_a_kubeconfig_naming_no_file_never_falls_back_to_the_home_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a typo in $KUBECONFIG must not send faults to the cluster ~/.kube/config points at
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "production"}))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "staging.yaml"))
    with pytest.raises(ClusterUnreachable) as refused:
        Connection.from_settings({})
    assert f"KUBECONFIG={tmp_path / 'staging.yaml'} names no file" in str(refused.value)
    monkeypatch.delenv("KUBECONFIG")
    assert Connection.from_settings({}).context == "production"  # unset: the home one


def test_a_context_switch_mid_run_does_not_move_the_probes(k8s: Emulator) -> None:
    """The connection is resolved once per process: after `kubectl config use-context` (here:
    the file rewritten to point at a dead cluster) the run's probes still ask the cluster it
    started on."""
    add_workload(k8s, "web", replicas=2)
    wait_ready(k8s, "shop", "web", 2)
    assert k8s.kubeconfig is not None
    ok, said = asyncio.run(ready_pods({"namespace": "shop", "labels": {"app": "web"}}, {}))
    assert ok, said
    config = json.loads(k8s.kubeconfig.read_text())
    config["clusters"].append({"name": "dead", "cluster": {"server": "http://127.0.0.1:9"}})
    config["contexts"].append({"name": "dead", "context": {"cluster": "dead", "user": "tester"}})
    config["current-context"] = "dead"
    k8s.kubeconfig.write_text(json.dumps(config))
    listed = len(calls(k8s, "list", "pods"))
    ok, said = asyncio.run(ready_pods({"namespace": "shop", "labels": {"app": "web"}}, {}))
    assert ok, said
    assert len(calls(k8s, "list", "pods")) == listed + 1
