"""On a machine where the Debian packages the tests need are not installed (nft, tc, redis,
Prometheus, openssl...), each test that needs one fails with one line naming the package to
install - never a CalledProcessError or FileNotFoundError traceback from inside the test.
Simulated by running real tests of this suite under a PATH that holds only the interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

CASES = {  # a test that runs the program -> the line it must fail with
    "tests/integration/test_network_kernel_faults_in_namespaces.py::"
    "test_netem_faults_are_refused_with_a_pointer_to_the_proxy":
        "needs ip, tc, nft, not found on PATH: install the Debian packages iproute2 nftables "
        "(`apt-get install iproute2 nftables`; ./scripts/test does it as root)",
    "tests/integration/test_network_proxy_faults_measured_by_a_client.py::"
    "test_redis_latency_through_chaos_run":
        "needs redis-server, not found on PATH: install the Debian package redis-server",
    "tests/integration/test_slo_prometheus_answers_checks.py::"
    "test_availability_matches_the_services_own_count":
        "needs prometheus, not found on PATH: install the Debian package prometheus",
    "tests/integration/test_probes_answer_from_real_servers.py::"
    "test_https_probe_with_verify_tls_false_accepts_it":
        "needs openssl, not found on PATH: install the Debian package openssl",
}


def test_each_missing_program_fails_its_test_in_one_line(tmp_path: Path) -> None:
    bare = tmp_path / "bin"  # only the interpreter: none of the system programs
    bare.mkdir()
    (bare / "python3").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bare), "CHAOS_STATE_DIR": str(tmp_path / "state"),
           "CHAOS_RUNS_DIR": str(tmp_path / "runs")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=-rfE",
         *CASES], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    lines = out.splitlines()
    for test, line in CASES.items():
        name = test.rsplit("::", 1)[1]
        (header,) = [i for i, s in enumerate(lines) if s.startswith("_") and f" {name} " in s]
        section = []  # what pytest printed for this test: up to the next header
        for text in lines[header + 1:]:
            if text.startswith(("_", "=")):
                break
            section.append(text)
        assert len(section) == 1 and section[0].startswith(line), (test, out)
        # counted as a failure, not skipped (with CI set, pytest appends the message)
        assert any(line == f"ERROR {test}" or line.startswith(f"ERROR {test} - ")
                   for line in lines), out
    for noise in ("Traceback", "CalledProcessError", "FileNotFoundError", "Errno 2"):
        assert noise not in out, out


def test_the_test_script_installs_every_package_the_tests_name_and_ci_runs_the_readme() -> None:
    """scripts/test installs the packages tests/support/system_tools.py names, and .ci/run runs
    the README's test command verbatim (so what CI proves is what a newcomer runs)."""
    from tests.support.system_tools import PACKAGES

    script = (ROOT / "scripts" / "test").read_text()
    (listed,) = [line for line in script.splitlines() if line.startswith("PACKAGES=")]
    assert set(PACKAGES.values()) <= set(listed.split("=", 1)[1].strip('"').split())
    readme = (ROOT / "README.md").read_text()
    command = readme.split("# 2. ", 1)[1].splitlines()[1]
    assert command == "./scripts/test"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[-1] == command and "rm -rf .venv" in ci
