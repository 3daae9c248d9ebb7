"""The pytest plugin, as a team would use it: a test suite written in pytester's directory and
run by pytest in a subprocess, with the plugin loaded from its `pytest11` entry point. Results
are read from pytest's own outcome and JUnit file; that nothing is left injected is read from
/proc (the target's state) and from `chaos status`, after a failure, a timeout and Ctrl-C.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest

from tests.conftest import EXPERIMENTS, free_port, open_injections, process_state, wait_until


def experiment(pytester: pytest.Pytester, name: str, source: str) -> Path:
    """An example experiment copied in with its own free port (runs never collide)."""
    text = (EXPERIMENTS / source).read_text()
    for default in ('port: "18089"', 'port: "18090"'):
        text = text.replace(default, f'port: "{free_port()}"')
    path = pytester.path / "experiments" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def nothing_injected() -> bool:
    return open_injections() == []


def holding(pid: int, duration: str = "60s") -> str:
    """An inline experiment (Python source) freezing `pid` for `duration`."""
    return (f'{{"title": "freeze {pid}", "faults": [{{"type": "process.suspend", '
            f'"target": {{"process": {{"pid": {pid}}}}}, "duration": "{duration}"}}]}}')


def test_the_fixture_returns_verdicts_and_measured_values(pytester: pytest.Pytester,
                                                          state_dir: Path) -> None:
    experiment(pytester, "quick.yaml", "quickstart.yaml")
    experiment(pytester, "crash.yaml", "demo-crash-without-supervisor.yaml")
    pytester.makepyfile(test_resilience=textwrap.dedent("""
        def test_held(chaos):
            result = chaos.run("experiments/quick.yaml")
            assert result.held and result.verdict == "held"
            home = result.check("home >= 99%", phase="after")
            assert home.passed and home.value >= 0.99 and home.events > 0
            assert result.check("home.latency.p95 < 500ms", phase="before").value < 0.5

        def test_deviated(chaos):
            result = chaos.run("experiments/crash.yaml")
            assert not result.held and result.verdict == "deviated"
            assert result.exit_code == 1
            assert not result.check("home >= 99%").passed
    """))
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    outcome.assert_outcomes(passed=2)
    assert nothing_injected()


def test_an_inline_experiment_and_a_failing_test_leave_nothing_injected(
        pytester: pytest.Pytester, state_dir: Path, sleeper: psutil.Process) -> None:
    pytester.makepyfile(test_inline=textwrap.dedent(f"""
        def test_fails_after_the_run(chaos):
            result = chaos.run({holding(sleeper.pid, "1s")})
            assert result.held and result.checks == []
            assert False, "the test itself fails"
    """))
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    outcome.assert_outcomes(failed=1)
    assert "the test itself fails" in outcome.stdout.str()
    assert process_state(sleeper.pid) != "T" and nothing_injected()


def test_the_marker_runs_the_experiment_and_judges_the_verdict(pytester: pytest.Pytester,
                                                                state_dir: Path) -> None:
    experiment(pytester, "quick.yaml", "quickstart.yaml")
    experiment(pytester, "crash.yaml", "demo-crash-without-supervisor.yaml")
    pytester.makepyfile(test_marked=textwrap.dedent("""
        import pytest

        @pytest.mark.chaos("experiments/quick.yaml")
        def test_held(chaos):
            assert chaos.result.check("home >= 99%").passed

        @pytest.mark.chaos("experiments/crash.yaml")
        def test_expected_to_hold():
            pass

        @pytest.mark.chaos("experiments/crash.yaml", expect="deviated")
        def test_known_weakness():
            pass
    """))
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    outcome.assert_outcomes(passed=2, failed=1)
    text = outcome.stdout.str()
    assert "test_expected_to_hold" in text and "did not end as expected (held)" in text
    assert "verdict: deviated (exit 1)" in text and "FAIL    home >= 99%" in text


def test_experiment_files_are_collected_with_checks_as_sub_results(pytester: pytest.Pytester,
                                                                   state_dir: Path) -> None:
    experiment(pytester, "quick.yaml", "quickstart.yaml")
    experiment(pytester, "crash.yaml", "demo-crash-without-supervisor.yaml")
    (pytester.path / "experiments" / "broken.yaml").write_text("title: x\nfaults: nope\n")
    junit = pytester.path / "junit.xml"
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--chaos-experiments",
                                            "experiments", f"--junitxml={junit}", "-rA",
                                            timeout=300)
    outcome.assert_outcomes(passed=1, failed=2)
    text = outcome.stdout.str()
    assert "broken.yaml" in text and "faults" in text and "expected a list" in text
    cases = {case.get("name"): case for case in ET.parse(junit).iter("testcase")}
    held = cases["The demo service answers again within 5s after being frozen for 3s"]
    properties = {p.get("name"): p.get("value") for p in held.iter("property")}
    assert properties["after: home >= 99%"].startswith("PASS (measured 100%")
    crashed = next(c for name, c in cases.items() if name and "survives a crash" in name)
    assert crashed.find("failure") is not None
    assert any(p.get("value", "").startswith("FAIL") for p in crashed.iter("property"))
    assert nothing_injected()


def test_a_timeout_reverts_the_fault(pytester: pytest.Pytester, state_dir: Path,
                                     sleeper: psutil.Process) -> None:
    pytester.makepyfile(test_slow=textwrap.dedent(f"""
        import pytest

        @pytest.mark.timeout(4)
        def test_holds_too_long(chaos):
            chaos.run({holding(sleeper.pid)})
    """))
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    outcome.assert_outcomes(failed=1)
    assert "Timeout" in outcome.stdout.str()
    assert process_state(sleeper.pid) != "T", "the timeout left the target frozen"
    assert nothing_injected()


def test_ctrl_c_reverts_and_stops_the_session(pytester: pytest.Pytester, state_dir: Path,
                                              sleeper: psutil.Process) -> None:
    pytester.makepyfile(test_held=textwrap.dedent(f"""
        def test_held_for_a_minute(chaos):
            chaos.run({holding(sleeper.pid)})

        def test_never_started():
            pass
    """))
    log = pytester.path / "pytest.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
                                cwd=pytester.path, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: process_state(sleeper.pid) == "T", 60) is not None, \
            log.read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 2, log.read_text()  # pytest: interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert process_state(sleeper.pid) != "T", "Ctrl-C left the target frozen"
    assert nothing_injected()
    text = log.read_text()
    assert "KeyboardInterrupt" in text and "test_never_started" not in text
