"""The pytest plugin (`pip install chaos-runner[pytest]`, entry point `pytest11`): resilience
checks in the test suite a team already runs.

- the `chaos` fixture runs an experiment file, or an inline experiment (a dict shaped like the
  YAML), and returns its verdict and measured values to assert on;
- `@pytest.mark.chaos(FILE, vars={...}, expect="held")` runs FILE before the test body (the
  result is `chaos.result`) and fails the test when the verdict is not the expected one;
- `pytest --chaos-experiments DIR` collects each experiment file in DIR as a test item whose
  checks are its sub-results (report sections, JUnit properties).

Every run goes through the same engine as `chaos run` (`chaos.runner.session`): ledger,
watchdog, guards, locks. A failing test cannot leave a fault behind because a run has reverted
everything before it returns; Ctrl-C and SIGTERM during a run revert at once and then stop the
session (as `chaos run` exits 130/143); a pytest-timeout interrupting a run cancels it, which
reverts in the engine's `finally`; and the watchdog covers a killed pytest.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chaos.errors import ExitCode, ExperimentInvalid

EXPERIMENT_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict in one phase, as the journal records it."""

    phase: str
    check: str
    status: str  # PASS / FAIL / NO_DATA / INVALID / ERROR
    value: float | None
    measured: str | None
    threshold: float | None
    events: int

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def __str__(self) -> str:
        return (f"{self.phase:<6} {self.status:<7} {self.check}  (measured "
                f"{self.measured or 'n/a'}, {self.events} events)")


@dataclass(frozen=True)
class ChaosResult:
    """What a run found: the verdict, every check's measured value, the journal."""

    verdict: str  # held, deviated, steady-state-not-met, aborted, ...
    exit_code: int
    reason: str
    journal: Mapping[str, Any] = field(repr=False)
    journal_path: Path | None = None

    @property
    def held(self) -> bool:
        return self.exit_code == ExitCode.OK

    @property
    def checks(self) -> list[CheckResult]:
        return [CheckResult(phase, c["check"], c["status"], c.get("value"), c.get("measured"),
                            c.get("threshold"), int(c.get("events") or 0))
                for phase, body in (self.journal.get("phases") or {}).items()
                for c in body.get("checks", [])]

    def check(self, text: str, phase: str = "after") -> CheckResult:
        """The verdict of the check written `text` in `phase` (before, during, after)."""
        for c in self.checks:
            if c.check == text and c.phase == phase:
                return c
        known = sorted({f"{c.phase}: {c.check}" for c in self.checks})
        raise KeyError(f"no check {text!r} in phase {phase!r}; the run has: {known}")

    def explain(self) -> str:
        lines = [f"verdict: {self.verdict} (exit {self.exit_code}): {self.reason}"]
        lines += [f"  {c}" for c in self.checks]
        if self.journal_path:
            lines.append(f"  journal: {self.journal_path}")
        return "\n".join(lines)


class ChaosFixture:
    """The `chaos` fixture: `chaos.run("experiments/x.yaml")` or `chaos.run({...})`."""

    def __init__(self, runs_dir: Path, root: Path) -> None:
        self.runs_dir = runs_dir
        self.root = root
        self.result: ChaosResult | None = None  # the last run's (the marker's, first)

    def run(self, experiment: str | os.PathLike[str] | Mapping[str, Any], *,
            vars: Mapping[str, str] | None = None) -> ChaosResult:  # noqa: A002 - as in YAML
        self.result = run_experiment(self.load(experiment, vars), self.runs_dir)
        return self.result

    def load(self, experiment: str | os.PathLike[str] | Mapping[str, Any],
             variables: Mapping[str, str] | None = None) -> Any:
        from chaos.runner.load import load_experiment

        if isinstance(experiment, Mapping):
            import yaml

            from chaos.model.loader import load_text
            from chaos.model.source import SourceText
            from chaos.runner.load import vocabulary

            text = yaml.safe_dump(dict(experiment), sort_keys=False)
            return _loaded(lambda: load_text(SourceText("<inline experiment>", text),
                                             vocabulary(), dict(variables or {})))
        path = Path(experiment)
        if not path.is_absolute() and not path.exists():
            path = self.root / path
        return _loaded(lambda: load_experiment(path, dict(variables or {})))


def _loaded(load: Any) -> Any:
    try:
        return load()
    except ExperimentInvalid as exc:
        pytest.fail(f"invalid experiment:\n{exc}", pytrace=False)


def run_experiment(experiment: Any, runs_dir: Path) -> ChaosResult:
    """One run, through the engine `chaos run` uses; a signal reverts, then stops pytest."""
    from chaos.reports.terminal import summary
    from chaos.runner.lifecycle import Lifecycle, handling_signals
    from chaos.runner.session import RunOptions, run_experiment as run

    async def signalled() -> Any:
        lifecycle = Lifecycle()
        with handling_signals(lifecycle):
            return await run(experiment, RunOptions(runs_dir=runs_dir), lifecycle=lifecycle)

    record = asyncio.run(signalled())
    print(summary(record.journal, str(record.journal_path)))  # captured; shown on failure
    code = int(record.result.exit_code)
    if code == ExitCode.INTERRUPTED:
        raise KeyboardInterrupt  # everything was reverted; pytest stops as after Ctrl-C
    if code == ExitCode.TERMINATED:
        pytest.exit("chaos: SIGTERM during an experiment; everything was reverted",
                    returncode=int(ExitCode.TERMINATED))
    return ChaosResult(str(record.journal.get("verdict")), code, record.result.reason,
                       record.journal, record.journal_path)


# --- hooks

MARKED_RUN = pytest.StashKey[ChaosResult]()  # the marker's run, judged before the test body



def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos", "chaos experiments")
    group.addoption("--chaos-experiments", action="append", default=[], metavar="PATH",
                    help="collect experiment files (a file, or a directory's *.yaml) as test "
                         "items, one per experiment, with each check as a sub-result")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos(experiment, vars=None, expect='held'): run the experiment (a file "
                   "or an inline mapping) before the test; the `chaos` fixture's .result has "
                   "its verdict; the test fails unless the verdict is `expect`")
    for path in config.getoption("chaos_experiments") or []:
        if path not in config.args:
            config.args.append(path)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    given = [Path(p).resolve() for p in parent.config.getoption("chaos_experiments") or []]
    if file_path.suffix not in EXPERIMENT_SUFFIXES:
        return None
    resolved = file_path.resolve()
    if any(resolved == g or g in resolved.parents for g in given):
        return ExperimentFile.from_parent(parent, path=file_path)
    return None


@pytest.fixture
def chaos(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> ChaosFixture:
    """Run chaos experiments inside a test: `result = chaos.run("experiments/x.yaml")`."""
    runs = tmp_path_factory.mktemp("chaos-runs")
    return ChaosFixture(runs, request.config.rootpath)


@pytest.fixture(autouse=True)
def _chaos_marker(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("chaos")
    if marker is None:
        return
    if not marker.args:
        pytest.fail("@pytest.mark.chaos needs the experiment: a file or an inline mapping",
                    pytrace=False)
    fixture: ChaosFixture = request.getfixturevalue("chaos")
    request.node.stash[MARKED_RUN] = fixture.run(marker.args[0], vars=marker.kwargs.get("vars"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    marker = item.get_closest_marker("chaos")
    result = item.stash.get(MARKED_RUN, None)
    if marker is None or result is None:
        return
    expect = marker.kwargs.get("expect", "held")
    if result.verdict != expect:
        pytest.fail(f"the experiment did not end as expected ({expect}):\n{result.explain()}",
                    pytrace=False)


class ExperimentFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from chaos.model.loader import ChaosToolkitFile, GameDayFile
        from chaos.runner.load import load_experiment

        try:
            experiment = load_experiment(self.path)
        except (GameDayFile, ChaosToolkitFile):
            return  # not a native experiment: `chaos gameday run` / `chaos run` take those
        except ExperimentInvalid as exc:
            yield ExperimentItem.from_parent(self, name=self.path.stem, experiment=None,
                                             invalid=exc)
            return
        yield ExperimentItem.from_parent(self, name=experiment.title, experiment=experiment,
                                         invalid=None)


class ExperimentItem(pytest.Item):
    def __init__(self, *, experiment: Any, invalid: ExperimentInvalid | None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.experiment = experiment
        self.invalid = invalid
        self.result: ChaosResult | None = None

    def runtest(self) -> None:
        if self.invalid is not None:
            raise ExperimentFailed(f"invalid experiment:\n{self.invalid}")
        factory = getattr(self.config, "_tmp_path_factory", None)  # pytest's tmp_path plugin
        runs = factory.mktemp("chaos-runs") if factory else Path(tempfile.mkdtemp("-chaos-runs"))
        self.result = run_experiment(self.experiment, runs)
        for check in self.result.checks:  # sub-results: JUnit properties, report sections
            self.user_properties.append((f"{check.phase}: {check.check}",
                                         f"{check.status} (measured {check.measured or 'n/a'})"))
        self.add_report_section("call", "chaos checks", self.result.explain())
        if not self.result.held:
            raise ExperimentFailed(self.result.explain())

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, ExperimentFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"chaos experiment: {self.name}"


class ExperimentFailed(Exception):
    """An experiment item whose hypothesis did not hold (or that could not run)."""
