"""`chaos --help` and `chaos validate` must not pay for the Kubernetes client, chaoslib or the
docker SDK.

A fresh interpreter runs the CLI's entry point in-process with sys.argv patched, then prints
sys.modules. Importable stand-ins for `kubernetes` and `chaoslib` are put on the path first, so
an import of either would succeed and show up here, rather than fail and be forgotten.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import fresh_cli

HEAVY = ("kubernetes", "chaoslib", "docker", "prometheus_client", "opentelemetry")  # + telemetry


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("heavy")
    for name in HEAVY:
        (path / name).mkdir()
        (path / name / "__init__.py").write_text("STAND_IN = True\n")
        (path / name / "client.py").write_text("")
    return path


def modules_after(stand_ins: Path, *argv: str) -> tuple[int, list[str]]:
    return fresh_cli.modules_after(*argv, path=(str(stand_ins),))


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m in HEAVY or m.startswith(tuple(f"{h}." for h in HEAVY))]


def test_the_stand_ins_would_be_seen_if_imported(stand_ins: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(stand_ins)}
    code = ("import kubernetes.client, chaoslib, docker, sys; "
            "print(sorted(m for m in sys.modules if m[:4] in ('kube', 'chao', 'dock')))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert "kubernetes.client" in out.stdout and "chaoslib" in out.stdout, out.stderr
    assert "docker" in out.stdout, out.stderr


def test_help_imports_neither_kubernetes_nor_chaoslib(stand_ins: Path) -> None:
    code, modules = modules_after(stand_ins, "--help")
    assert code == 0
    assert "chaos.cli" in modules
    assert heavy(modules) == []


def test_validate_imports_neither_kubernetes_nor_chaoslib(stand_ins: Path) -> None:
    code, modules = modules_after(stand_ins, "validate", "experiments/quickstart.yaml")
    assert code == 0
    assert "chaos.model.loader" in modules  # it did validate
    assert heavy(modules) == []


def test_validate_of_a_container_experiment_imports_no_docker_sdk(stand_ins: Path) -> None:
    code, modules = modules_after(stand_ins, "validate",
                                  "experiments/compose-shop-cache-paused.yaml")
    assert code == 0
    assert "chaos.faults.container" in modules  # the container catalogue was consulted
    assert heavy(modules) == []
