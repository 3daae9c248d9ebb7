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
from tests.ctk.conftest import run_ours, run_theirs


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


def _exiting(tmp_path: Path, method: list[dict[str, object]], rollbacks: list[dict[str, object]],
             controls: list[dict[str, object]]) -> Path:
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps({"title": "exits", "description": "d", "controls": controls,
                                "method": method, "rollbacks": rollbacks}))
    return path


def _touch(name: str, path: Path) -> dict[str, object]:
    return {"type": "action", "name": name, "provider": {
        "type": "python", "module": "tests.ctk.activities", "func": "touch",
        "arguments": {"path": str(path)}}}


EXIT_ZERO = {"type": "python", "module": "tests.ctk.activities", "func": "exit_with",
             "arguments": {"code": 0}}
EXITING_CONTROL = [{"name": "exits", "provider": {"type": "python",
                                                  "module": "tests.ctk.interrupting_control"}}]


@pytest.mark.parametrize("by", ["activity", "control"])
def test_sys_exit_0_is_an_interrupted_run_not_a_pass(tmp_path: Path, dirs: dict[str, Path],
                                                     by: str) -> None:
    """chaoslib records SystemExit as `interrupted` (and its default strategy then skips the
    rollbacks); ours rolled back, then left with the raised code (0: a passing CI gate) and no
    journal."""
    injected = tmp_path / "injected"
    stopper = {"type": "action", "name": "exits", "provider": EXIT_ZERO if by == "activity"
               else {"type": "python", "module": "tests.ctk.activities", "func": "value",
                     "arguments": {"value": 1}}}
    path = _exiting(tmp_path, [_touch("inject", injected), stopper, _touch(
        "never", tmp_path / "never")], [{"type": "action", "name": "undo", "provider": {
            "type": "process", "path": "rm", "arguments": ["-f", str(injected)]}}],
        EXITING_CONTROL if by == "control" else [])
    ours = run_ours(str(path), dirs["ours"])
    assert ours.code == 4, ours.stdout + ours.stderr
    assert not injected.exists() and not (tmp_path / "never").exists()
    assert ours.ctk["status"] == "interrupted"
    assert [(r["activity"]["name"], r["status"]) for r in ours.ctk["rollbacks"]] == [
        ("undo", "succeeded")]
    assert ours.journal["exit_code"] == 4 and "SystemExit(0)" in ours.journal["reason"]
    if by == "activity":
        exited = next(r for r in ours.ctk["run"] if r["activity"]["name"] == "exits")
        assert exited["status"] == "failed" and "SystemExit(0)" in exited["exception"][0]
    theirs = run_theirs(str(path), dirs["theirs"])
    assert theirs["status"] == "interrupted"
    assert theirs["rollbacks"] == []  # documented: ours always roll back


def test_sys_exit_in_a_rollback_does_not_skip_the_others(tmp_path: Path,
                                                         dirs: dict[str, Path]) -> None:
    injected = tmp_path / "injected"
    path = _exiting(tmp_path, [_touch("inject", injected)], [
        {"type": "action", "name": "exits", "provider": EXIT_ZERO},
        {"type": "action", "name": "undo", "provider": {
            "type": "process", "path": "rm", "arguments": ["-f", str(injected)]}}], [])
    ours = run_ours(str(path), dirs["ours"])
    # a rollback that exited did not finish its work: something may still be injected
    assert ours.code == 5, ours.stdout + ours.stderr
    assert not injected.exists(), "the rollback after the one that exited ran"
    assert ours.ctk["status"] == "interrupted" and ours.journal["exit_code"] == 5
    assert "rollback exits failed: SystemExit(0)" in ours.journal["reason"]


def test_sys_exit_in_a_continuous_hypothesis_stops_the_run(tmp_path: Path,
                                                           dirs: dict[str, Path]) -> None:
    """Nobody awaits the continuous hypothesis: its SystemExit stopped it silently, and the
    run went on to the end of a long action, then passed."""
    flag = tmp_path / "flag"
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps({
        "title": "exits during", "description": "d",
        "runtime": {"hypothesis": {"strategy": "continuously", "frequency": 0.1}},
        "steady-state-hypothesis": {"title": "t", "probes": [{
            "type": "probe", "name": "exits-once-flagged", "tolerance": True, "provider": {
                "type": "python", "module": "tests.ctk.activities", "func": "exit_if_exists",
                "arguments": {"path": str(flag)}}}]},
        "method": [_touch("flag", flag), {"type": "action", "name": "long", "provider": {
            "type": "python", "module": "tests.ctk.activities", "func": "slow",
            "arguments": {"seconds": 120}}}],
        "rollbacks": [_touch("undo", tmp_path / "rolled-back")]}))
    ours = run_ours(str(path), dirs["ours"], timeout=90)
    assert ours.code == 4, ours.stdout + ours.stderr
    assert (tmp_path / "rolled-back").exists()
    assert ours.ctk["status"] == "interrupted" and "SystemExit(0)" in ours.journal["reason"]
    long = next(r for r in ours.ctk["run"] if r["activity"]["name"] == "long")
    assert long["status"] == "failed" and "interrupted" in long["exception"][0]
