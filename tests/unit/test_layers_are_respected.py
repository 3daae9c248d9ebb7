"""The import contracts in .importlinter hold: the layers of DESIGN.md, reports apart from the
engine, the demo standalone, and `kubernetes` / `chaoslib` imported in one package each.

import-linter runs as a subprocess (it builds its own import graph and must not see this test's
sys.modules). `python -m importlinter.cli` would do nothing and exit 0, so the click command is
called explicitly. The second test proves the contracts bite, on a copy of the package with a
forbidden import added, so a contract that silently checks nothing cannot pass unnoticed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", "--no-logo", str(cwd / ".importlinter")],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_the_import_contracts_are_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout
    assert "KEPT" in result.stdout and "BROKEN" not in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("chaos/model/source.py", "from chaos.runner import engine", "Layers"),
    ("chaos/runner/plan.py", "import kubernetes", "kubernetes client"),
    ("chaos/slo/probes.py", "import chaoslib", "chaoslib"),
    ("chaos/reports/junit.py", "from chaos.adapters import registry", "Reports read journals"),
    ("chaos/demo/service.py", "from chaos import units", "demo service imports nothing"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, module: str, line: str,
                                              contract: str) -> None:
    shutil.copytree(ROOT / "chaos", tmp_path / "chaos",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(CONFIG, tmp_path / ".importlinter")
    with open(tmp_path / module, "a") as handle:
        handle.write(f"\n{line}  # added by the test\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [ln for ln in result.stdout.splitlines() if ln.rstrip().endswith("BROKEN")
              or "BROKEN (" in ln]
    assert broken, result.stdout
    assert contract in result.stdout.split("Broken contracts", 1)[-1], result.stdout
