"""Bad game-day files: every problem at once, as file:line:col: field: what to do, exit 2, no
traceback - and nothing runs, not even the valid experiments."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.model.gameday import GameDay, load_gameday
from tests.conftest import run_chaos
from tests.gameday.conftest import FIXTURES, GAMEDAYS, write_gameday

BAD = """title: Everything wrong at once
schedule: {cron: "0 10 * *", timezone: Europe/Berln}
experiments:
  - "{experiments}/quickstart.yaml"
  - missing.yaml
  - parallel:
      - "{experiments}/quickstart.yaml"
      - parallel: ["{experiments}/quickstart.yaml", "{experiments}/quickstart.yaml"]
  - {file: "{experiments}/quickstart.yaml", wieght: 2}
stop_on: first_failur
notify: [{webhook: "not a url"}]
"""


def test_every_problem_is_reported_with_its_location(tmp_path: Path) -> None:
    path = write_gameday(tmp_path, BAD)
    result = run_chaos("gameday", "run", str(path), "--out", str(tmp_path / "out"), timeout=60)
    assert result.returncode == 2
    err = result.stderr
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    expected = [
        (2, "schedule.cron: expected a cron expression of five fields"),
        (2, "schedule.timezone: unknown time zone 'Europe/Berln'"),
        (5, "experiments[1]: experiment file 'missing.yaml' not found"),
        (8, "experiments[2].parallel[1]: a parallel group cannot contain another one"),
        (9, "experiments[3].wieght: unknown field; did you mean weight?"),
        (10, "stop_on: expected one of never, first_failure, first_abort, got "
             "'first_failur'; did you mean first_failure?"),
        (11, "notify[0].webhook: expected a string matching"),
    ]
    for line, message in expected:
        assert f"{path}:{line}:" in err and message in err, (line, message, err)
    assert "7 problems" in err


def test_an_invalid_experiment_stops_the_game_day_before_anything_runs(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text((FIXTURES / "suspend-sleeper.yaml").read_text().replace(
        "duration: 30s", "duration: soon"))
    path = write_gameday(tmp_path, """title: One bad experiment
experiments:
  - "{experiments}/quickstart.yaml"
  - {file: broken.yaml, vars: {pid: "1"}}
""")
    result = run_chaos("gameday", "run", str(path), "--out", str(tmp_path / "out"), timeout=60)
    assert result.returncode == 2 and not (tmp_path / "out").exists()
    assert f"{path}:4:5: experiment broken.yaml is invalid" in result.stderr
    assert f"{broken}:" in result.stderr and "faults[0].duration" in result.stderr
    # a missing variable is found too: the entry's vars are what the experiment will get
    path.write_text(path.read_text().replace('vars: {pid: "1"}', "vars: {}"))
    broken.write_text((FIXTURES / "suspend-sleeper.yaml").read_text())
    result = run_chaos("validate", str(path), timeout=60)
    assert result.returncode == 2 and "variable ${pid} is not set" in result.stderr


def test_the_examples_load_into_the_model() -> None:
    demo = load_gameday(GAMEDAYS / "local-demo.yaml")
    assert isinstance(demo, GameDay) and demo.stop_on == "never" and demo.schedule is None
    assert [(len(s.experiments), s.parallel) for s in demo.steps] == [(1, False), (2, True)]
    assert [r.weight for r in demo.experiments] == [1, 2, 1]
    assert demo.experiments[1].vars == {"port": "18190"}
    assert all(Path(r.path).is_file() for r in demo.experiments)
    weekly = load_gameday(GAMEDAYS / "checkout-weekly.yaml")
    assert weekly.schedule is not None and weekly.schedule.timezone == "Europe/Berlin"
    assert weekly.stop_on == "first_abort" and weekly.owners == ("sre-oncall", "checkout-team")
    assert weekly.notify[0].url.startswith("http") and weekly.notify[0].timeout == 5.0
    result = run_chaos("validate", *map(str, sorted(GAMEDAYS.glob("*.yaml"))),
                       timeout=60)
    assert result.returncode == 0, result.stderr


def test_game_day_files_are_told_from_experiment_files_by_the_loader() -> None:
    from chaos.model.loader import GameDayFile
    from chaos.runner.load import load_experiment
    from tests.conftest import EXPERIMENTS

    for path in GAMEDAYS.glob("*.yaml"):
        with pytest.raises(GameDayFile, match="run it with `chaos gameday run"):
            load_experiment(str(path), {})
    for path in EXPERIMENTS.glob("*.yaml"):
        load_experiment(str(path), {})  # no GameDayFile (nor any other problem)
    result = run_chaos("run", str(GAMEDAYS / "local-demo.yaml"), timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "local-demo.yaml:" in result.stderr and "chaos gameday run" in result.stderr


def test_an_output_directory_that_cannot_be_created_is_a_usage_error(tmp_path: Path) -> None:
    path = write_gameday(tmp_path, 'title: Nowhere to write\nexperiments:\n'
                                   '  - "{experiments}/quickstart.yaml"\n')
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a file where a directory should be: fails even as root
    result = run_chaos("gameday", "run", str(path), "--out", str(blocker / "runs"), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"cannot create {blocker / 'runs'}" in result.stderr and "--out" in result.stderr
    assert "internal error" not in result.stderr and "started" not in result.stdout
