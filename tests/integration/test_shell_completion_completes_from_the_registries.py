"""`chaos completion SHELL` prints a script that a real shell sources; the shell then completes
`chaos` command lines by calling `chaos` back, as it would for a user pressing TAB.

bash is driven for real: the script is sourced, COMP_WORDS/COMP_CWORD set as readline sets them,
the completion function called, and COMPREPLY read back. Injection ids come from a real
`chaos inject` holding a fault in another process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, chaos_cmd, open_injections, process_state, run_chaos, wait_until


@pytest.fixture
def on_path(tmp_path: Path, state_dir: Path) -> dict[str, str]:
    """An environment where `chaos` on PATH is this checkout's chaos, as after pip install."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "chaos"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m chaos "$@"\n')
    wrapper.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}


def bash_complete(env: dict[str, str], line: str, cwd: Path = ROOT) -> list[str]:
    words = line.split(" ")
    script = ('source <(chaos completion bash) || exit 9\n'
              f'COMP_WORDS=({" ".join(repr(w) for w in words)})\n'
              f'COMP_CWORD={len(words) - 1}\n'
              '_chaos_completion chaos 2>/dev/null\n'
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    result = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True,
                            env=env, cwd=cwd, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return [w for w in result.stdout.splitlines() if w]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_shell_gets_a_script_naming_chaos(shell: str) -> None:
    result = run_chaos("completion", shell, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "_CHAOS_COMPLETE" in result.stdout and f"{shell}_complete" in result.stdout


def test_an_unknown_shell_is_a_usage_error() -> None:
    result = run_chaos("completion", "powershell", timeout=60)
    assert result.returncode == 2
    assert "bash" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_fault_types_and_their_flags(on_path: dict[str, str]) -> None:
    assert {"run", "inject", "stop", "completion"} <= set(bash_complete(on_path, "chaos "))
    faults = json.loads(run_chaos("faults", "--json", timeout=60).stdout)
    process_faults = sorted(f["type"] for f in faults if f["type"].startswith("process."))
    assert sorted(bash_complete(on_path, "chaos inject process.")) == process_faults
    flags = bash_complete(on_path, "chaos inject process.kill --")
    assert {"--signal", "--pid", "--process", "--for"} - {"--for"} <= set(flags)
    assert "--rate" not in flags  # another fault's parameter


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_leaves_experiment_files_to_the_shell(on_path: dict[str, str]) -> None:
    # type "file": the script hands over to bash's own file completion (compopt -o default)
    result = subprocess.run(chaos_cmd(), capture_output=True, text=True, timeout=60, env={
        **on_path, "_CHAOS_COMPLETE": "bash_complete", "COMP_WORDS": "chaos run exp",
        "COMP_CWORD": "2"}, check=False)
    assert result.stdout.splitlines() == ["file,exp"], result.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_injection_ids_for_stop(on_path: dict[str, str], sleeper: psutil.Process,
                                               tmp_path: Path) -> None:
    assert bash_complete(on_path, "chaos stop ") == []  # nothing injected: nothing offered
    with open(tmp_path / "inject.log", "wb") as log:
        holder = subprocess.Popen(
            chaos_cmd("inject", "process.suspend", "--pid", str(sleeper.pid), "--for", "60s"),
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: process_state(sleeper.pid) == "T", 30) is not None, \
            (tmp_path / "inject.log").read_text()
        (row,) = open_injections()
        offered = bash_complete(on_path, "chaos stop ")
        assert sorted(offered) == sorted([row["id"], row["run"]])
        assert bash_complete(on_path, f"chaos stop {row['id'][:-1]}") == [row["id"]]
    finally:
        holder.send_signal(signal.SIGINT)
        holder.wait(30)
    assert process_state(sleeper.pid) != "T"
