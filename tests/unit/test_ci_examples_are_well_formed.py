"""The CI examples in examples/ci/ are copied into people's repositories as they are: they must
parse, run `chaos run --junit`, render the HTML report and the Markdown summary even when a
hypothesis failed, keep them as artifacts, and post the summary; every `chaos` command line in
them must use flags that `chaos` has, and every shell script must parse in bash.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, run_chaos

CI = ROOT / "examples" / "ci"


def chaos_lines(script: str) -> list[list[str]]:
    """`chaos SUBCOMMAND ...` command lines in a shell script, as argv."""
    found = []
    for line in script.replace("\\\n", " ").splitlines():
        line = line.strip()
        if line.startswith("chaos "):
            found.append(shlex.split(line.split("#")[0]))
    return found


def check_flags(argv: list[str]) -> None:
    help_text = run_chaos(argv[1], "--help", timeout=60).stdout
    for word in argv[2:]:
        flag = word.split("=")[0]
        if flag.startswith("-"):
            assert re.search(rf"(^|[ ,]){re.escape(flag)}\b", help_text, re.M), \
                f"`{' '.join(argv)}`: chaos {argv[1]} has no {flag}"


def bash_parses(script: str) -> None:
    result = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, f"{result.stderr}\n{script}"


def test_github_actions_workflow() -> None:
    workflow: dict[Any, Any] = yaml.safe_load((CI / "github-actions.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert "pull_request" in triggers
    assert workflow["permissions"]["pull-requests"] == "write"
    (job,) = workflow["jobs"].values()
    steps = job["steps"]
    assert all(("uses" in s) != ("run" in s) for s in steps), "a step has run or uses, not both"
    runs = [s.get("run", "") for s in steps]
    for script in runs:
        script = re.sub(r"\$\{\{[^}]*\}\}", "X", script)
        bash_parses(script)
        for argv in chaos_lines(script):
            check_flags(argv)

    index = {i: s for i, s in enumerate(steps)}
    run_step = next(i for i, s in index.items() if "chaos run" in s.get("run", ""))
    assert "--junit chaos-reports/junit.xml" in steps[run_step]["run"]
    assert any("start the service" in s.get("name", "").lower()
               for s in steps[:run_step]), "the service starts before the experiments"
    later = steps[run_step + 1:]
    render = next(s for s in later if "--format html" in s.get("run", ""))
    assert render["if"] == "always()", "reports are rendered also when a hypothesis failed"
    assert "-o chaos-reports/report.html" in render["run"]
    assert "--format markdown -o chaos-reports/summary.md" in render["run"]
    upload = next(s for s in later if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()" and "chaos-reports/" in upload["with"]["path"]
    comment = next(s for s in later if "gh pr comment" in s.get("run", ""))
    assert "always()" in comment["if"] and "pull_request" in comment["if"]
    assert "--body-file chaos-reports/summary.md" in comment["run"]
    assert "GH_TOKEN" in comment["env"]


def test_gitlab_ci_job() -> None:
    config: dict[str, Any] = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    job = config["chaos"]
    for key in ("before_script", "script", "after_script"):
        script = "\n".join(job[key])
        bash_parses(script)
        for argv in chaos_lines(script):
            check_flags(argv)
    assert any("chaos run" in line and "--junit chaos-reports/junit.xml" in line
               for line in job["script"])
    after = "\n".join(job["after_script"])  # runs also when the script failed
    assert "--format html -o chaos-reports/report.html" in after
    assert "merge_requests/$CI_MERGE_REQUEST_IID/notes" in after
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always" and "chaos-reports/" in artifacts["paths"]
    assert artifacts["reports"]["junit"] == "chaos-reports/junit.xml"


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_readme_links_the_examples(name: str) -> None:
    assert f"examples/ci/{name}" in (ROOT / "README.md").read_text()
