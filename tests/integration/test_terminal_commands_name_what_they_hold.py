"""The ad hoc commands as a person uses them: `chaos inject` prints the id `chaos stop` takes,
`chaos status` is a table with headers and fails when injections are orphaned, a mistyped fault
type gets a did-you-mean, `chaos faults TYPE` shows one fault.

Every command is the real CLI in its own process; the target's state comes from /proc.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.conftest import (
    ROOT, chaos_cmd, free_port, process_state, run_chaos, status_injections, wait_until)
from tests.support.terminal import Screen, on_pty


def frozen(pid: int) -> bool:
    return process_state(pid) == "T"


def open_rows() -> list[dict[str, object]]:
    result = run_chaos("status", "--json", timeout=30)
    return status_injections(result)


def test_inject_prints_the_id_that_chaos_stop_takes(
        tmp_path: Path, state_dir: Path, sleeper: psutil.Process) -> None:
    out = tmp_path / "inject.out"
    with open(out, "wb") as stdout:
        proc = subprocess.Popen(chaos_cmd("inject", "process.suspend", "--pid", str(sleeper.pid),
                                          "--for", "5m"), cwd=ROOT, stdout=stdout,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        line = re.compile(r"^injection (\S+)", re.M)
        assert wait_until(lambda: line.search(out.read_text()), 30) is not None, out.read_text()
        (ident,) = line.findall(out.read_text())
        assert frozen(sleeper.pid)
        assert [row["id"] for row in open_rows()] == [ident]
        stopped = run_chaos("stop", ident, timeout=60)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert proc.wait(30) == 0
        assert not frozen(sleeper.pid)
        assert open_rows() == []
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)


def test_status_exits_5_and_says_runner_gone_when_injections_are_orphaned(
        tmp_path: Path, state_dir: Path, sleeper: psutil.Process) -> None:
    proc = subprocess.Popen(chaos_cmd("inject", "process.suspend", "--pid", str(sleeper.pid),
                                      "--for", "5m"), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: frozen(sleeper.pid) and open_rows(), 30) is not None
        held = run_chaos("status", timeout=30)
        assert held.returncode == 0, held.stdout + held.stderr
        watchdog = next(p for p in psutil.process_iter(["cmdline"])
                        if "chaos.safety.watchdog" in (p.info["cmdline"] or [])
                        and str(proc.pid) in (p.info["cmdline"] or []))
        watchdog.kill()
        proc.kill()
        proc.wait(10)
        watchdog.wait(10)
        gone = run_chaos("status", timeout=30)
        assert gone.returncode == 5, gone.stdout + gone.stderr
        header, row, *footer = gone.stdout.splitlines()
        assert header.split() == ["ID", "FAULT", "TARGET", "STATE", "LEFT", "RUNNER"]
        assert row.rstrip().endswith("RUNNER GONE") and f"pid {sleeper.pid} " in row
        assert "chaos recover" in "\n".join(footer)
        assert run_chaos("status", "--json", timeout=30).returncode == 5
        assert run_chaos("recover", timeout=60).returncode == 0
        assert not frozen(sleeper.pid)
        done = run_chaos("status", timeout=30)
        assert done.returncode == 0 and "no active injections" in done.stdout
    finally:
        proc.kill()
        proc.wait(10)
        run_chaos("recover", "--force", timeout=60)


@pytest.mark.parametrize(("typed", "meant"), [("proces.suspend", "process.suspend"),
                                              ("suspend", "process.suspend"),
                                              ("resource.cpuu", "resource.cpu"),
                                              ("network.latncy", "network.latency")])
def test_a_mistyped_fault_type_gets_a_did_you_mean(
        state_dir: Path, typed: str, meant: str) -> None:
    for command in (("inject", typed, "--pid", "1", "--for", "1s"), ("faults", typed)):
        result = run_chaos(*command, timeout=30)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"no fault type {typed!r}; did you mean {meant}?" in result.stderr
        assert "Traceback" not in result.stderr
    assert open_rows() == []  # nothing was injected


def test_faults_type_shows_one_fault_in_detail() -> None:
    result = run_chaos("faults", "network.latency", timeout=30)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.splitlines()[0] == "network.latency"
    assert "network.loss" not in text  # one fault, not the catalogue
    assert re.search(r"adapters: .*local\.proxy", text)
    assert re.search(r"delay\s+--delay\s+duration", text)
    assert "- type: network.latency" in text and "duration: 30s" in text
    as_json = json.loads(run_chaos("faults", "network.latency", "--json", timeout=30).stdout)
    assert as_json["type"] == "network.latency"
    assert [p["name"] for p in as_json["params"]][:2] == ["delay", "jitter"]
    instant = run_chaos("faults", "process.kill", timeout=30).stdout
    assert "instant" in instant and "duration: 30s" not in instant


def test_status_with_nothing_held_exits_0(state_dir: Path) -> None:
    result = run_chaos("status", timeout=30)
    assert result.returncode == 0 and "no active injections" in result.stdout


def holder_of(ident: str) -> psutil.Process:
    (row,) = [r for r in open_rows() if r["id"] == ident]
    return psutil.Process(int(row["runner_pid"]))  # type: ignore[call-overload]


def gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_detach_returns_the_id_while_a_background_holder_keeps_the_fault(
        state_dir: Path, sleeper: psutil.Process) -> None:
    result = run_chaos("inject", "process.suspend", "--pid", str(sleeper.pid), "--for", "5m",
                       "--detach", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    (ident,) = re.findall(r"^injection (\S+)$", result.stdout, re.M)
    # the command has returned; the fault is still held, by a holder in a session of its own
    assert frozen(sleeper.pid)
    holder = holder_of(ident)
    assert holder.is_running() and os.getsid(holder.pid) == holder.pid
    assert f"chaos stop {ident}" in result.stderr
    (row,) = open_rows()  # the log bears the run's id, so one leads to the other
    assert f"log: {state_dir}/detached/inject-{row['run']}.log" in result.stderr
    assert (state_dir / "detached" / f"inject-{row['run']}.log").is_file()
    stopped = run_chaos("stop", ident, timeout=60)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not frozen(sleeper.pid)
    assert wait_until(lambda: gone(holder), 30) is not None, "the holder did not end"
    assert open_rows() == []


def test_a_killed_detached_holder_is_reverted_by_its_watchdog(
        state_dir: Path, sleeper: psutil.Process) -> None:
    result = run_chaos("inject", "process.suspend", "--pid", str(sleeper.pid), "--for", "5m",
                       "--detach", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    (ident,) = re.findall(r"^injection (\S+)$", result.stdout, re.M)
    holder = holder_of(ident)
    holder.kill()
    assert wait_until(lambda: not frozen(sleeper.pid), 30) is not None, "still frozen"
    assert wait_until(lambda: open_rows() == [], 15) is not None, open_rows()


def test_detach_that_cannot_inject_reports_why_and_leaves_nothing(state_dir: Path) -> None:
    no_such_pid = 4194305  # above Linux's highest pid_max
    result = run_chaos("inject", "process.suspend", "--pid", str(no_such_pid), "--for", "5m",
                       "--detach", timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "injection " not in result.stdout
    assert str(no_such_pid) in result.stderr and "verdict: ERROR" in result.stderr
    assert open_rows() == []


def test_direction_and_host_are_the_flag_names_for_proxy_and_kernel_alike() -> None:
    for fault in ("network.latency", "network.loss"):
        shown = run_chaos("inject", fault, "--help", timeout=30).stdout
        assert "--direction" in shown and "--host" in shown or fault == "network.latency"
        for old in ("--stream", "--traffic", "--peer"):
            assert old not in shown  # hidden aliases, not advertised
    kernel = ("inject", "network.loss", "--device", "lo", "--percent", "10%", "--for", "1s")
    wrong = run_chaos(*kernel, "--direction", "upstream", "--dry-run", timeout=30)
    assert wrong.returncode == 2
    assert "--direction: expected one of both, ingress, egress" in wrong.stderr, wrong.stderr
    new = run_chaos(*kernel, "--direction", "ingress", "--host", "10.1.2.3", "--dry-run",
                    timeout=30)
    old = run_chaos(*kernel, "--traffic", "ingress", "--peer", "10.1.2.3", "--dry-run",
                    timeout=30)
    assert new.returncode == old.returncode == 0, new.stderr + old.stderr
    assert "host=10.1.2.3" in new.stdout and new.stdout == old.stdout


def test_direction_reaches_the_proxy_target(state_dir: Path, web_server: object) -> None:
    upstream = web_server.port  # type: ignore[attr-defined]
    proxy = ("inject", "network.latency", "--listen", f"127.0.0.1:{free_port()}", "--upstream",
             f"127.0.0.1:{upstream}", "--delay", "1ms", "--for", "1s")
    wrong = run_chaos(*proxy, "--direction", "sideways", timeout=30)
    assert wrong.returncode == 2
    assert "--direction: expected one of downstream, upstream, both" in wrong.stderr
    for flags in (("--direction", "upstream"), ("--stream", "upstream")):
        result = run_chaos(*proxy, *flags, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        journal = max((state_dir / "adhoc").glob("*/journal.json"), key=lambda p: p.stat().st_mtime)
        target = json.loads(journal.read_text())["experiment"]["faults"][0]["target"]
        assert "direction=upstream" in target, target


def test_inject_on_a_terminal_counts_down_and_leaves_a_clean_screen(
        state_dir: Path, sleeper: psutil.Process) -> None:
    run = on_pty([*chaos_cmd("inject", "process.suspend", "--pid", str(sleeper.pid), "--for",
                             "2s")], cwd=str(ROOT))
    assert run.returncode == 0, run.text
    screen = Screen.of(run.output)
    assert any(re.search(r"process.suspend on pid \d+ .*: +\d\.\ds left - Ctrl-C reverts now", f)
               for f in screen.frames), screen.frames
    assert not any("Ctrl-C reverts now" in line for line in screen.lines), screen.text
    assert re.search(r"^injection \S+  \(`chaos stop \S+` ends it\)$", screen.text, re.M)
