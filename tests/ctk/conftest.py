"""Run a Chaos Toolkit fixture both ways: with `chaos run` (ours, a real subprocess) and with
chaostoolkit-lib's own engine (tests.ctk.reference, another subprocess), and compare outcomes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, chaos_cmd

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Ours:
    code: int
    stdout: str
    stderr: str
    ctk: dict[str, Any]  # the Chaos Toolkit journal (--journal-format ctk)
    journal: dict[str, Any]  # ours


@pytest.fixture
def dirs(tmp_path: Path, state_dir: Path) -> dict[str, Path]:
    """A work dir for each engine (side effects land there) and the runs dir."""
    found = {"ours": tmp_path / "ours", "theirs": tmp_path / "theirs", "runs": tmp_path / "runs",
             "state": state_dir}
    for name in ("ours", "theirs"):
        found[name].mkdir()
    return found


def run_ours(fixture: str, workdir: Path, *args: str, env: dict[str, str] | None = None,
             timeout: float = 60) -> Ours:
    tag = uuid.uuid4().hex[:8]
    journal, runs = workdir.parent / f"ctk-journal-{tag}.json", workdir.parent / f"runs-{tag}"
    result = subprocess.run(
        chaos_cmd("run", "-q", str(FIXTURES / fixture), "--journal-format", "ctk",
                  "--journal", str(journal), "--runs-dir", str(runs),
                  "--var", f"workdir={workdir}", *args),
        cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
        timeout=timeout, check=False)
    ctk = json.loads(journal.read_text()) if journal.exists() else {}
    ours = [json.loads(p.read_text()) for p in runs.glob("*/journal.json")]
    return Ours(result.returncode, result.stdout, result.stderr, ctk, ours[0] if ours else {})


def run_theirs(fixture: str, workdir: Path, *args: str, env: dict[str, str] | None = None,
               timeout: float = 60) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.ctk.reference", str(FIXTURES / fixture),
         "--var", f"workdir={workdir}", *args],
        cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
        timeout=timeout, check=False)
    assert "@@journal@@" in result.stdout, result.stderr[-2000:]
    return json.loads(result.stdout.rsplit("@@journal@@", 1)[1])  # type: ignore[no-any-return]


def outcome(journal: dict[str, Any]) -> dict[str, Any]:
    """What must match: status, deviated, each hypothesis' verdict, which activities ran with
    what status (background ones finish in any order) and which rollbacks ran."""
    def met(state: dict[str, Any] | None) -> bool | None:
        return None if state is None else state["steady_state_met"]

    def runs(key: str) -> list[tuple[str, str]]:
        # a control may append anything (chaoslib keeps it): a string stands for itself
        return [(r["activity"].get("name"), r["status"]) if isinstance(r, dict) else
                (repr(r), "appended") for r in journal.get(key) or []]

    return {"status": journal["status"], "deviated": journal["deviated"],
            "before": met(journal["steady_states"]["before"]),
            "after": met(journal["steady_states"]["after"]),
            "method": sorted(runs("run")), "rollbacks": sorted(runs("rollbacks"))}
