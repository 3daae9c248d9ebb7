"""Chaos-Toolkit-format experiments run by `chaos run` end as chaostoolkit-lib 1.44 ends them:
same status, deviated flag, hypothesis verdicts, activity statuses and rollbacks, except for the
documented safety differences (docs/chaostoolkit.md), which are asserted here explicitly.

Each test runs the same fixture file twice, as real subprocesses: with our CLI and with
chaoslib's own engine (tests/ctk/reference.py), each with its own work directory, and also
checks side effects (files the activities create) from outside.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import WebServer
from tests.ctk.conftest import outcome, run_ours, run_theirs

CTK_JOURNAL_KEYS = {"chaoslib-version", "platform", "node", "experiment", "start", "status",
                    "deviated", "steady_states", "run", "rollbacks", "end", "duration"}
RUN_KEYS = {"activity", "output", "start", "end", "duration", "status"}


def test_each_provider_type_against_a_real_http_server(dirs: dict[str, Path],
                                                       web_server: WebServer) -> None:
    base = f"--var=base_url=http://127.0.0.1:{web_server.port}"
    ours = run_ours("providers.yaml", dirs["ours"], base)
    theirs = run_theirs("providers.yaml", dirs["theirs"], base)
    assert ours.code == 0, ours.stdout + ours.stderr
    assert outcome(ours.ctk) == outcome(theirs)
    assert outcome(ours.ctk)["method"] == [("http-action", "succeeded"),
                                           ("process-action", "succeeded"),
                                           ("python-action", "succeeded")]
    for name in ("process-action", "python-action", "python-rollback", "process-rollback"):
        assert (dirs["ours"] / name).exists() and (dirs["theirs"] / name).exists(), name
    http = next(r for r in ours.ctk["run"] if r["activity"]["name"] == "http-action")
    assert http["output"]["status"] == 204


def test_the_chaostoolkit_journal_has_the_keys_its_tools_read(dirs: dict[str, Path],
                                                              web_server: WebServer) -> None:
    ours = run_ours("providers.yaml", dirs["ours"],
                    f"--var=base_url=http://127.0.0.1:{web_server.port}")
    assert set(ours.ctk) >= CTK_JOURNAL_KEYS
    assert set(ours.ctk["steady_states"]) == {"before", "after", "during"}
    for run in ours.ctk["run"] + ours.ctk["rollbacks"]:
        assert set(run) >= RUN_KEYS
    assert ours.ctk["chaoslib-version"] == "1.44.0"
    # ours sits next to it, with the same verdict, for `chaos report` and JUnit
    assert ours.journal["schema"] == "chaos.journal/v1"
    assert ours.journal["chaostoolkit"]["status"] == "completed"
    assert [c["status"] for c in ours.journal["phases"]["before"]["checks"]] == ["PASS"] * 3


def test_every_tolerance_kind_is_judged_as_chaostoolkit_judges_it(dirs: dict[str, Path]) -> None:
    pytest.importorskip("jsonpath2", reason="chaostoolkit-lib[jsonpath] provides jsonpath2")
    ours = run_ours("tolerances.json", dirs["ours"])
    theirs = run_theirs("tolerances.json", dirs["theirs"])
    assert ours.code == 0, ours.stdout + ours.stderr
    assert outcome(ours.ctk) == outcome(theirs)
    probes = ours.ctk["steady_states"]["before"]["probes"]
    assert len(probes) == 10 and all(p["tolerance_met"] for p in probes)


@pytest.mark.parametrize("word", ["hi", "not-hi"])
def test_configuration_and_secrets_from_the_environment(dirs: dict[str, Path], word: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTK_TEST_WORD", "hi")
    monkeypatch.setenv("CTK_TEST_COUNT", "4")
    monkeypatch.setenv("CTK_TEST_TOKEN", "s3cret")
    # --var overrides a configuration key; the tolerance is substituted too, so both agree
    args = [f"--var=word={word}"]
    ours = run_ours("config-secrets.yaml", dirs["ours"], *args)
    theirs = run_theirs("config-secrets.yaml", dirs["theirs"], *args)
    assert ours.code == 0, ours.stdout + ours.stderr
    assert outcome(ours.ctk) == outcome(theirs)
    assert (dirs["ours"] / "seen").read_text() == f"{word} s3cret\n"
    assert (dirs["theirs"] / "seen").read_text() == f"{word} s3cret\n"


def test_a_missing_environment_variable_is_a_clear_error(dirs: dict[str, Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTK_TEST_WORD", raising=False)
    ours = run_ours("config-secrets.yaml", dirs["ours"])
    assert ours.code == 2
    # where it is named, which variable, and what to do
    assert "config-secrets.yaml:5:9: configuration.word: environment variable CTK_TEST_WORD " \
           "is not set" in ours.stdout
    assert "pass --var NAME=VALUE" in ours.stdout
    assert "Traceback" not in ours.stderr


def test_an_unreachable_server_is_said_in_a_few_words(dirs: dict[str, Path]) -> None:
    """Port 1 on 127.0.0.1: refused. chaoslib's text is an exception class and a requests
    repr; the summary says what failed and why."""
    ours = run_ours("providers.yaml", dirs["ours"], "--var=base_url=http://127.0.0.1:1")
    theirs = run_theirs("providers.yaml", dirs["theirs"], "--var=base_url=http://127.0.0.1:1")
    assert outcome(ours.ctk) == outcome(theirs)
    assert ours.code == 3, ours.stdout + ours.stderr
    assert "failed to connect to http://127.0.0.1:1/: connection refused" in ours.stdout
    assert "chaoslib.exceptions" not in ours.stdout and "HTTPConnectionPool" not in ours.stdout


def test_deviation_after_the_method(dirs: dict[str, Path]) -> None:
    ours = run_ours("deviates-after.yaml", dirs["ours"])
    theirs = run_theirs("deviates-after.yaml", dirs["theirs"])
    assert outcome(ours.ctk) == outcome(theirs)
    assert outcome(theirs)["deviated"] is True
    assert ours.code == 1
    assert (dirs["ours"] / "rolled-back").exists() and (dirs["theirs"] / "rolled-back").exists()


def test_pauses_and_background_activities(dirs: dict[str, Path]) -> None:
    ours = run_ours("pauses-background.yaml", dirs["ours"])
    theirs = run_theirs("pauses-background.yaml", dirs["theirs"])
    assert ours.code == 0, ours.stdout + ours.stderr
    assert outcome(ours.ctk) == outcome(theirs)
    for name in ("paused", "rollback", "background-rollback"):
        assert (dirs["ours"] / name).exists(), name
    # the background activity ran alongside the paused one, and the probe after the pause saw
    # its file: pauses happen (before and after) and background work is waited for
    runs = {r["activity"]["name"]: r for r in ours.ctk["run"]}
    assert runs["after-pause"]["output"] is True
    assert runs["background-slow"]["output"] == "done"


def test_controls_see_the_same_hooks(dirs: dict[str, Path], tmp_path: Path) -> None:
    ours_log, theirs_log = tmp_path / "ours.log", tmp_path / "theirs.log"
    ours = run_ours("controls.yaml", dirs["ours"], env={"CTK_CONTROL_LOG": str(ours_log)})
    theirs = run_theirs("controls.yaml", dirs["theirs"], env={"CTK_CONTROL_LOG": str(theirs_log)})
    assert ours.code == 0, ours.stdout + ours.stderr
    assert outcome(ours.ctk) == outcome(theirs)
    hooks = ours_log.read_text().splitlines()
    assert hooks == theirs_log.read_text().splitlines()
    assert "before activity action-one" in hooks and "before rollback" in hooks


def test_strings_a_control_appends_to_the_run_lists_are_kept(dirs: dict[str, Path]) -> None:
    """chaoslib keeps them in the journal; ours crashed (`'str' object has no attribute
    'get'`) with exit 2 and no journal."""
    ours = run_ours("controls-append-strings.yaml", dirs["ours"])
    theirs = run_theirs("controls-append-strings.yaml", dirs["theirs"])
    assert ours.code == 0, ours.stdout + ours.stderr
    assert outcome(ours.ctk) == outcome(theirs)
    assert ours.ctk["run"][-1] == theirs["run"][-1] == "note from the method control"
    assert ours.ctk["rollbacks"][-1] == "note from the rollback control"
    assert (dirs["ours"] / "rolled-back").exists()
    assert ours.journal["exit_code"] == 0
    assert [r["activity"] for r in ours.journal["chaostoolkit"]["method"]] == ["action-one"]


# --- the documented differences: exit codes and when rollbacks play by default

def test_steady_state_not_met_before_is_exit_3_and_runs_no_rollback(
        dirs: dict[str, Path]) -> None:
    ours = run_ours("before-not-met.yaml", dirs["ours"])
    theirs = run_theirs("before-not-met.yaml", dirs["theirs"])
    mine, ctk = outcome(ours.ctk), outcome(theirs)
    assert {k: v for k, v in mine.items() if k != "rollbacks"} == {
        k: v for k, v in ctk.items() if k != "rollbacks"}
    assert ctk["status"] == "completed" and ctk["deviated"] is False  # Chaos Toolkit: exit 0
    assert ours.code == 3
    # difference: nothing ran, so there is nothing to roll back (chaostoolkit#168)
    assert ctk["rollbacks"] == [("rollback", "succeeded")] and mine["rollbacks"] == []
    assert not (dirs["ours"] / "method-ran").exists()
    # Chaos Toolkit's own behaviour is one flag away
    always = run_ours("before-not-met.yaml", dirs["ours"], "--rollback-strategy", "always")
    assert outcome(always.ctk)["rollbacks"] == ctk["rollbacks"] and always.code == 3


def test_a_failed_run_still_rolls_back_by_default(dirs: dict[str, Path]) -> None:
    ours = run_ours("probe-fails-after.yaml", dirs["ours"])
    theirs = run_theirs("probe-fails-after.yaml", dirs["theirs"])
    mine, ctk = outcome(ours.ctk), outcome(theirs)
    assert ctk["status"] == "failed" and ctk["rollbacks"] == []  # Chaos Toolkit skips them
    assert {k: v for k, v in mine.items() if k != "rollbacks"} == {
        k: v for k, v in ctk.items() if k != "rollbacks"}
    assert mine["rollbacks"] == [("rollback", "succeeded")]  # difference: we play them
    assert (dirs["ours"] / "rolled-back").exists()
    assert not (dirs["theirs"] / "rolled-back").exists()
    assert ours.code == 1


@pytest.mark.parametrize("strategy", ["always", "never", "deviated"])
def test_chaostoolkit_rollback_strategies_behave_as_there(dirs: dict[str, Path],
                                                          strategy: str) -> None:
    ours = run_ours("probe-fails-after.yaml", dirs["ours"], "--rollback-strategy", strategy)
    theirs = run_theirs("probe-fails-after.yaml", dirs["theirs"], "--rollback-strategy", strategy)
    assert outcome(ours.ctk) == outcome(theirs)
    assert ours.journal["chaostoolkit"]["rollback_strategy"] == strategy


def test_a_failed_rollback_is_exit_5(dirs: dict[str, Path]) -> None:
    ours = run_ours("rollback-fails.yaml", dirs["ours"])
    theirs = run_theirs("rollback-fails.yaml", dirs["theirs"])
    assert outcome(ours.ctk) == outcome(theirs)
    assert outcome(theirs)["status"] == "completed"  # Chaos Toolkit: exit 0
    assert outcome(theirs)["rollbacks"] == [("broken-rollback", "failed")]
    assert ours.code == 5
    assert "the rollback could not undo it" in ours.journal["reason"]


def test_junit_and_the_summary_show_the_probes(dirs: dict[str, Path], tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    ours = run_ours("deviates-after.yaml", dirs["ours"], "--junit", str(junit))
    assert ours.code == 1
    text = junit.read_text()
    assert 'failures="2"' in text and 'name="no-marker == False"' in text
    assert "[FAIL] no-marker == False" in ours.stdout
    assert "chaostoolkit: status completed, deviated true, rollbacks played" in ours.stdout
