"""What a person sees when the cluster says no, or a guard does: 401 and 403 name the verb, the
resource, the namespace and the Role that grants it; kube-system and namespaces outside the
allowlist are refused before anything is touched; a revert on a pod or node that is gone (or
was replaced: another UID) counts as done and never hangs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chaos.adapters.kubernetes.connection import Connection
from chaos.adapters.registry import new_registry
from tests.conftest import run_chaos
from tests.kubernetes.conftest import add_node, add_workload, wait_ready, write_experiment
from tests.support.kubernetes.emulator import NODES, Emulator

DELETE = [{"type": "pod.delete", "target": {"pods": {"namespace": "shop",
                                                     "labels": {"app": "web"}}, "count": 1}}]


@pytest.fixture
def web(k8s: Emulator) -> Emulator:
    add_workload(k8s, "web", replicas=2)
    wait_ready(k8s, "shop", "web", 2)
    return k8s


def test_403_names_the_missing_rule_and_the_role_to_apply(web: Emulator, state_dir: Path,
                                                          tmp_path: Path) -> None:
    web.cluster.deny.add(("delete", "", "pods"))
    result = run_chaos("run", "-q", str(write_experiment(tmp_path / "e.json", DELETE)))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out  # PermissionDenied
    assert "not allowed to delete pods in namespace shop (403 Forbidden)" in out
    assert 'cannot delete resource "pods"' in out  # the API server's own words, cut short
    assert "the Role chaos-runner has this rule" in out
    assert 'resources: ["pods"], verbs: ["delete"]' in out
    assert "Traceback" not in out


def test_403_on_a_cluster_scoped_resource_points_at_the_cluster_role(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    add_node(k8s, "node-1")
    k8s.cluster.deny.add(("get", "", "nodes"))
    path = write_experiment(tmp_path / "e.json", [{"type": "node.cordon", "duration": "1s",
                                                   "target": {"node": "node-1"}}])
    result = run_chaos("run", "-q", str(path))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out  # refused while planning: nothing was touched
    assert "not allowed to get nodes (403 Forbidden)" in out
    assert "ClusterRole chaos-runner-nodes" in out
    assert not [c for c in k8s.cluster.calls if c.verb == "patch"]


def test_401_says_the_credentials_were_refused(web: Emulator, state_dir: Path,
                                               tmp_path: Path) -> None:
    web.cluster.unauthorized = True
    result = run_chaos("run", "-q", str(write_experiment(tmp_path / "e.json", DELETE)))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "refused our credentials (401 Unauthorized) to list pods in namespace shop" in out
    assert "not-a-secret" not in out  # the token never reaches the output


@pytest.mark.parametrize("namespace, settings, expected", [
    ("kube-system", {}, "refusing to touch namespace kube-system"),
    ("payments", {"namespaces": ["shop"]}, "namespace payments is not in kubernetes.namespaces"),
])
def test_guards_refuse_namespaces_before_any_call_changes_anything(
        k8s: Emulator, state_dir: Path, tmp_path: Path, namespace: str,
        settings: dict[str, object], expected: str) -> None:
    add_workload(k8s, "dns", namespace=namespace, replicas=1)
    wait_ready(k8s, namespace, "dns", 1)
    faults = [{"type": "pod.delete", "target": {"pods": {"namespace": namespace}}}]
    path = write_experiment(tmp_path / "e.json", faults, kubernetes=settings)
    result = run_chaos("run", "-q", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stdout + result.stderr
    assert not [c for c in k8s.cluster.calls if c.verb != "list"]


def test_kube_system_is_allowed_when_the_experiment_says_so(
        k8s: Emulator, state_dir: Path, tmp_path: Path) -> None:
    add_workload(k8s, "dns", namespace="kube-system", replicas=1)
    wait_ready(k8s, "kube-system", "dns", 1)
    faults = [{"type": "pod.delete", "target": {"pods": {"namespace": "kube-system"}}}]
    path = write_experiment(tmp_path / "e.json", faults,
                            kubernetes={"allow_kube_system": True})
    result = run_chaos("run", "-q", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert [c.namespace for c in k8s.cluster.calls if c.verb == "delete"] == ["kube-system"]


def test_reverts_on_vanished_or_replaced_targets_count_as_gone(k8s: Emulator) -> None:
    add_node(k8s, "node-1")
    conn = Connection.from_settings({}).as_spec()
    node = k8s.call(lambda c: c.get(NODES, None, "node-1"))
    registry = new_registry()
    specs = [
        {"adapter": "kubernetes.cordon", "action": "uncordon", "connection": conn,
         "node": "node-1", "uid": "an-older-node"},  # same name, another UID
        {"adapter": "kubernetes.taint", "action": "untaint", "connection": conn,
         "node": "node-9", "uid": "x", "taint": {"key": "k", "value": "v", "effect": "NoSchedule"}},
        {"adapter": "kubernetes.scale", "action": "restore", "connection": conn,
         "resource": "deployments", "namespace": "shop", "name": "web", "uid": "u", "replicas": 3},
        {"adapter": "kubernetes.partition", "action": "delete", "connection": conn,
         "namespace": "shop", "name": "chaos-partition-gone"},
    ]

    async def revert_all() -> list[str]:
        return [await asyncio.wait_for(registry.revert(s), 10) for s in specs]

    assert asyncio.run(revert_all()) == ["gone"] * 4
    assert k8s.call(lambda c: c.get(NODES, None, "node-1")) == node
    assert not [c for c in k8s.cluster.calls if c.verb in ("patch", "create")]


def test_a_kubeconfig_that_is_not_yaml_is_refused_with_its_name(
        state_dir: Path, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("clusters: [\n")
    result = run_chaos("inject", "pod.delete", "-l", "app=web", "--kubeconfig", str(kubeconfig))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert f"{kubeconfig}" in out and "not valid YAML" in out, out
    assert "internal error" not in out and "Traceback" not in out


def _closed_port_kubeconfig(path: Path) -> tuple[Path, str]:
    """A kubeconfig whose server is a 127.0.0.1 port nobody listens on (bound, then closed)."""
    import json
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "down",
        "clusters": [{"name": "down", "cluster": {"server": url}}],
        "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "down", "context": {"cluster": "down", "user": "tester",
                                                  "namespace": "shop"}}]}))
    return path, url


@pytest.mark.parametrize("how", ["run", "inject"])
def test_an_api_server_that_does_not_answer_is_a_usage_error_before_anything(
        state_dir: Path, tmp_path: Path, how: str) -> None:
    kubeconfig, url = _closed_port_kubeconfig(tmp_path / "kubeconfig")
    if how == "run":
        path = write_experiment(tmp_path / "e.json", DELETE,
                                kubernetes={"kubeconfig": str(kubeconfig)})
        result = run_chaos("run", str(path))
    else:
        result = run_chaos("inject", "pod.delete", "-l", "app=web", "--kubeconfig",
                           str(kubeconfig))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out  # like a target that is not there: nothing was touched
    assert f"cannot reach the Kubernetes API at {url} (context down of {kubeconfig})" in out
    assert "Connection refused" in out and "is the cluster up" in out, out
    assert "Retrying" not in out and "Traceback" not in out and "ABORTED" not in out, out
    status = run_chaos("status")
    assert status.returncode == 0 and "no active injections" in status.stdout, status.stdout


def test_a_probe_counts_an_api_server_that_does_not_answer_as_a_failed_sample(
        tmp_path: Path) -> None:
    from chaos.adapters.kubernetes.probes import ready_pods

    kubeconfig, url = _closed_port_kubeconfig(tmp_path / "kubeconfig")
    ok, said = asyncio.run(ready_pods({"namespace": "shop"}, {"kubeconfig": str(kubeconfig)}))
    assert not ok and f"cannot reach the Kubernetes API at {url}" in said, said


def test_a_kubeconfig_that_does_not_exist_is_named_as_missing(
        state_dir: Path, tmp_path: Path) -> None:
    """`kubernetes: {kubeconfig: ...}` naming no file: said so, with the path as resolved from
    the experiment's directory (not the client's "No configuration found")."""
    path = write_experiment(tmp_path / "e.json", DELETE,
                            kubernetes={"kubeconfig": "clusters/prod.yaml"})
    result = run_chaos("run", str(path))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert f"kubeconfig {tmp_path / 'clusters' / 'prod.yaml'} does not exist" in out, out
    assert "No configuration found" not in out and "Traceback" not in out, out


def test_a_context_the_kubeconfig_does_not_have_lists_the_ones_it_has(
        state_dir: Path, tmp_path: Path) -> None:
    kubeconfig, _ = _closed_port_kubeconfig(tmp_path / "kubeconfig")
    result = run_chaos("inject", "pod.delete", "-l", "app=web", "--kubeconfig",
                       str(kubeconfig), "--context", "prod")
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert f"context prod is not in {kubeconfig} (its contexts: down)" in out, out
    assert "Expected object with name" not in out and "Traceback" not in out, out


def test_an_api_server_that_never_answers_is_asked_once_per_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts and stays silent costs one read timeout per call, not four
    (urllib3 retried timeouts 3 times: 2 minutes per call with the 30 s read timeout)."""
    import json
    import socket
    import threading

    from chaos.adapters.kubernetes import api
    from chaos.adapters.kubernetes.probes import ready_pods

    monkeypatch.setattr(api, "TIMEOUT", (5.0, 0.3))
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)  # close() does not wake a blocked accept()
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                accepted.append(server.accept()[0])  # and never answer
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "silent",
        "clusters": [{"name": "silent", "cluster": {"server": url}}],
        "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "silent", "context": {"cluster": "silent", "user": "tester"}}]}))
    try:
        ok, said = asyncio.run(ready_pods({"namespace": "shop"},
                                          {"kubeconfig": str(kubeconfig)}))
    finally:
        done.set()
        thread.join(5)
        server.close()
        for conn in accepted:
            conn.close()
    assert not ok and "no answer within the read timeout (0.3s)" in said, said
    assert len(accepted) == 1, f"{len(accepted)} connections for one call"


@pytest.mark.parametrize("labels", [{"app": "web,tier!=db"}, {"app": "web shop"},
                                    {"tier!": "db"}])
def test_labels_that_are_not_label_syntax_are_refused_before_any_call(
        web: Emulator, state_dir: Path, tmp_path: Path, labels: dict[str, str]) -> None:
    """A comma or `!=` in a value would make the API server select other pods than written;
    anything else malformed would be its 400 (exit 4, "aborted"): both are usage errors."""
    faults = [{"type": "pod.delete", "target": {"pods": {"namespace": "shop",
                                                         "labels": labels}, "count": 1}}]
    before = len(web.cluster.calls)
    result = run_chaos("run", "-q", str(write_experiment(tmp_path / "e.json", faults)))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "target.pods.labels: " in out and "is not a Kubernetes label" in out, out
    assert web.cluster.calls[before:] == [], web.cluster.calls[before:]
