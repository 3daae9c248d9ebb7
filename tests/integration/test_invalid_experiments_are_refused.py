"""Bad experiment files get a clear message naming file, line, field and fix; exit 2; no traceback.

Each file under tests/fixtures/invalid/ is a mistake people make when writing experiments. Its
first lines say what the real CLI must report, one line per problem (all problems are reported at
once, and nothing else is):

    # expect: LINE:COL PATH: FRAGMENT…FRAGMENT      a located problem; `PATH: ` when it has one
    # expect: - FRAGMENT                             a problem of the whole file (no location)

Fragments, separated by `…`, must appear in that order on the problem's line. `chaos run` is
checked on a subset as well: it must refuse before starting anything, so the ledger stays empty.
The CLI runs as a real subprocess; the runs go in parallel to keep this file fast.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_chaos

FIXTURES = ROOT / "tests" / "fixtures" / "invalid"
FILES = sorted(FIXTURES.glob("*.yaml"))
RUN_TOO = (
    "billion-laughs.yaml", "chaos-toolkit-experiment.yaml", "cmdline-regex-unclosed.yaml",
    "count-above-max-targets.yaml", "empty-faults-without-hypothesis.yaml",
    "duration-without-unit.yaml", "instant-fault-with-duration.yaml", "many-problems-at-once.yaml",
    "service-target-undeclared.yaml", "shell-string-run.yaml", "tab-indentation.yaml",
    "undefined-variable.yaml",
)
_EXPECT = re.compile(r"# expect: (?:(?P<line>\d+):(?P<col>\d+)|-) "
                     r"(?:(?P<path>[A-Za-z_][\w.\[\]-]*): )?(?P<text>.+)")


@dataclass(frozen=True)
class Expected:
    """One problem the CLI must report for a fixture file."""

    line: int | None
    column: int | None
    path: str | None
    fragments: tuple[str, ...]

    def prefix(self, file: str) -> str:
        where = f"{file}:{self.line}:{self.column}: " if self.line is not None else ""
        return f"  {where}{self.path + ': ' if self.path else ''}"

    def found_in(self, line: str, file: str) -> bool:
        if not line.startswith(self.prefix(file)):
            return False
        pos = 0
        for fragment in self.fragments:
            pos = line.find(fragment, pos)
            if pos < 0:
                return False
            pos += len(fragment)
        return True


def expectations(path: Path) -> list[Expected]:
    """The `# expect:` lines at the top of a fixture (the rest may not even be UTF-8)."""
    found = []
    for raw in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        if not raw.startswith("# expect: "):
            break
        match = _EXPECT.fullmatch(raw)
        assert match, f"{path.name}: malformed expectation {raw!r}"
        line, col = match["line"], match["col"]
        found.append(Expected(int(line) if line else None, int(col) if col else None,
                              match["path"], tuple(match["text"].split("…"))))
    assert found, f"{path.name}: a fixture starts with at least one `# expect:` line"
    return found


@dataclass(frozen=True)
class Outcome:
    result: subprocess.CompletedProcess[str]
    state_dir: Path | None = None


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], Outcome]]:
    """Every CLI run this module checks, started together: (command, file name) -> outcome."""

    def validate(path: Path) -> Outcome:
        return Outcome(run_chaos("validate", str(path), timeout=60))

    def run(path: Path) -> Outcome:
        base = tmp_path_factory.mktemp(path.stem)
        env = {"CHAOS_STATE_DIR": str(base / "state"), "CHAOS_RUNS_DIR": str(base / "runs")}
        return Outcome(run_chaos("run", str(path), timeout=60, env=env), base / "state")

    jobs = [("validate", p, validate) for p in FILES]
    jobs += [("run", FIXTURES / name, run) for name in RUN_TOO]
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 2)) as pool:
        futures = {(command, p.name): pool.submit(job, p) for command, p, job in jobs}
        yield {key: future.result() for key, future in futures.items()}


def assert_refused_clearly(path: Path, result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 2, output
    expected = expectations(path)
    count = len(expected)
    header = f"{path}: {count} problem{'s' if count != 1 else ''}"
    assert header in result.stderr.splitlines(), (
        f"expected exactly {count} problem(s), all reported at once:\n{result.stderr}")
    lines = result.stderr.splitlines()
    for want in expected:
        assert any(want.found_in(line, str(path)) for line in lines), (
            f"missing {want.prefix(str(path))}{'…'.join(want.fragments)}\n"
            f"in:\n{result.stderr}")


def test_there_are_enough_realistic_mistakes() -> None:
    assert len(FILES) >= 35
    assert any(len(expectations(p)) >= 3 for p in FILES), "a file with 3+ problems at once"
    assert set(RUN_TOO) <= {p.name for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_validate_names_file_line_field_and_fix(
    path: Path, outcomes: dict[tuple[str, str], Outcome]
) -> None:
    result = outcomes["validate", path.name].result
    assert_refused_clearly(path, result)
    assert result.stdout == "", "nothing is reported as ok"


@pytest.mark.parametrize("name", RUN_TOO)
def test_run_refuses_before_injecting_anything(
    name: str, outcomes: dict[tuple[str, str], Outcome]
) -> None:
    outcome = outcomes["run", name]
    assert_refused_clearly(FIXTURES / name, outcome.result)
    assert "nothing was run" in outcome.result.stderr
    assert outcome.state_dir is not None
    ledger = outcome.state_dir / "ledger"
    records = [line for f in ledger.glob("*") for line in f.read_text().splitlines()]
    assert not [r for r in records if '"intent"' in r], records


def test_validate_of_many_files_reports_each_and_exits_2() -> None:
    result = run_chaos("validate", str(FIXTURES), str(ROOT / "experiments" / "quickstart.yaml"),
                       timeout=60)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 2
    for path in FILES:
        assert f"{path}: " in result.stderr, f"{path.name} not reported"
    assert "quickstart.yaml: ok" in result.stdout
