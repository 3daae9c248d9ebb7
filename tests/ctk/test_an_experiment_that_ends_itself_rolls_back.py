"""chaoslib's own ways for an activity or a control to end an experiment early - a control
raising InterruptExecution, or chaoslib.exit.exit_gracefully / exit_ungracefully (SIGUSR1 /
SIGUSR2, what chaostoolkit-addons' safeguards use) - end it like a guardrail: rollbacks played, exit 4,
recorded `interrupted` as chaoslib records it. Unhandled, SIGUSR1 killed the runner before any
rollback and without a journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_chaos


@pytest.mark.parametrize(("stopper", "controls"), [
    ({"func": "end_gracefully"}, []),
    ({"func": "value", "arguments": {"value": 1}},  # the control stops the run before it
     [{"name": "safeguard", "provider": {"type": "python",
                                         "module": "tests.ctk.interrupting_control"}}]),
], ids=["exit_gracefully", "control"])
def test_an_experiment_that_ends_itself_still_rolls_back(
        tmp_path: Path, state_dir: Path, stopper: dict[str, object],
        controls: list[dict[str, object]]) -> None:
    injected = tmp_path / "injected"
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps({
        "title": "ends itself", "description": "d", "controls": controls,
        "method": [
            {"type": "action", "name": "inject", "provider": {
                "type": "python", "module": "tests.ctk.activities", "func": "touch",
                "arguments": {"path": str(injected)}}},
            {"type": "probe", "name": "safeguard", "provider": {
                "type": "python", "module": "tests.ctk.activities", **stopper}}],
        "rollbacks": [{"type": "action", "name": "undo", "provider": {
            "type": "process", "path": "rm", "arguments": ["-f", str(injected)]}}]}))
    ctk = tmp_path / "ctk.json"
    result = run_chaos("run", "-q", str(path), "--runs-dir", str(tmp_path / "runs"),
                       "--journal-format", "ctk", "--journal", str(ctk))
    assert result.returncode == 4, result.stdout + result.stderr
    assert not injected.exists()
    journal = json.loads(ctk.read_text())
    assert journal["status"] == "interrupted"
    assert [(r["activity"]["name"], r["status"]) for r in journal["rollbacks"]] == [
        ("undo", "succeeded")]
