"""`chaos gameday export --kubernetes`: manifests that validate against the Kubernetes OpenAPI
schema offline (kubernetes-validate, pinned version), with the adapter's own RBAC rules, and a
ConfigMap that lays the files out so the game day's relative paths still resolve."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import kubernetes_validate
import pytest
import yaml

from chaos.adapters.kubernetes import rbac
from tests.conftest import ROOT, run_chaos
from tests.gameday.conftest import GAMEDAYS

K8S_VERSION = "1.30.0"  # pinned, so a new schema release cannot change the verdict (timeZone: GA in 1.27)


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("export") / "gameday.yaml"
    result = run_chaos("gameday", "export", str(GAMEDAYS / "checkout-weekly.yaml"),
                       "--kubernetes", "--namespace", "chaos", "--target-namespace", "shop",
                       "--target-namespace", "payments", "--cluster-role",
                       "--k8s-version", K8S_VERSION, "-o", str(out), timeout=60)
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all(out.read_text()))


def test_every_manifest_validates_against_the_pinned_schema(manifests: list[dict]) -> None:  # type: ignore[type-arg]
    for doc in manifests:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    kinds = [d["kind"] for d in manifests]
    assert kinds == ["ServiceAccount", "ConfigMap", "Role", "RoleBinding", "Role", "RoleBinding",
                     "ClusterRole", "ClusterRoleBinding", "CronJob"]


def test_the_validator_would_catch_a_broken_manifest(manifests: list[dict]) -> None:  # type: ignore[type-arg]
    cronjob = dict(manifests[-1])
    cronjob["spec"] = {**cronjob["spec"], "concurrencyPolicy": 3}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(cronjob, K8S_VERSION, strict=True)


def test_the_cronjob_keeps_the_schedule_zone_and_never_overlaps(manifests: list[dict]) -> None:  # type: ignore[type-arg]
    spec = manifests[-1]["spec"]
    assert spec["schedule"] == "0 10 * * TUE" and spec["timeZone"] == "Europe/Berlin"
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == rbac.SERVICE_ACCOUNT
    (container,) = pod["containers"]
    assert container["args"][:3] == ["gameday", "run", "/etc/chaos/files/gamedays/"
                                                       "checkout-weekly.yaml"]


def test_rbac_is_the_adapters_rules_in_each_target_namespace(manifests: list[dict]) -> None:  # type: ignore[type-arg]
    roles = [d for d in manifests if d["kind"] == "Role"]
    assert [r["metadata"]["namespace"] for r in roles] == ["shop", "payments"]
    for role in roles:
        assert rbac.allowed(role["rules"]) == rbac.allowed(rbac.NAMESPACED_RULES)
    (cluster,) = [d for d in manifests if d["kind"] == "ClusterRole"]
    assert rbac.allowed(cluster["rules"]) == rbac.allowed(rbac.CLUSTER_RULES)
    for binding in (d for d in manifests if d["kind"].endswith("Binding")):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": rbac.SERVICE_ACCOUNT,
                                        "namespace": "chaos"}]


def test_the_configmap_recreates_the_files_where_the_game_day_expects_them(
        manifests: list[dict], tmp_path: Path) -> None:  # type: ignore[type-arg]
    configmap = manifests[1]
    pod = manifests[-1]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    for item in volume["configMap"]["items"]:  # what the kubelet does with them
        target = tmp_path / PurePosixPath(item["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(configmap["data"][item["key"]])
    assert (tmp_path / "gamedays/checkout-weekly.yaml").read_text() == (
        GAMEDAYS / "checkout-weekly.yaml").read_text()
    result = run_chaos("validate", str(tmp_path / "gamedays/checkout-weekly.yaml"),
                       timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "experiments/cpu-saturation.yaml").read_text() == (
        ROOT / "experiments/cpu-saturation.yaml").read_text()


def test_a_game_day_without_a_schedule_cannot_be_a_cronjob() -> None:
    result = run_chaos("gameday", "export", str(GAMEDAYS / "local-demo.yaml"), "--kubernetes",
                       timeout=60)
    assert result.returncode == 2 and "has no schedule" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_default_image_is_the_adapters(manifests: list[dict]) -> None:  # type: ignore[type-arg]
    pod = manifests[-1]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == rbac.DEFAULT_IMAGE


def test_a_kubernetes_version_without_a_schema_is_a_usage_error(tmp_path: Path) -> None:
    result = run_chaos("gameday", "export", str(GAMEDAYS / "checkout-weekly.yaml"),
                       "--kubernetes", "--k8s-version", "1.30", "-o", str(tmp_path / "x.yaml"),
                       timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no schema for Kubernetes 1.30" in result.stderr
    assert f"--k8s-version {K8S_VERSION}" in result.stderr
    assert not (tmp_path / "x.yaml").exists()
