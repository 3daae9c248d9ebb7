"""Targets are resolved when the fault starts, after the declared services started: a worker
that a service's supervisor spawns can be targeted, and `process: {service: NAME}` keeps a
same-named process elsewhere on the host out of it. `--dry-run` says which targets can only be
known once the services run.

The supervisor is a real process tree started by `chaos run`; the states of the worker and of
the decoy are read from /proc while the run holds the fault.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    ROOT,
    SLEEPER_CODE,
    chaos_cmd,
    journals,
    process_state,
    release,
    run_chaos,
    unique_marker,
    wait_until,
)

SUPERVISOR = textwrap.dedent("""\
    import signal, subprocess, sys, time
    name, ready, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # the workers' argv[0] is `name`: that is what `process: {name: ...}` matches
    workers = [subprocess.Popen([name, "-c", "import time\\nwhile True: time.sleep(0.05)"],
                                executable=sys.executable) for _ in range(count)]
    signal.signal(signal.SIGTERM, lambda *_: ([w.kill() for w in workers], sys.exit(0)))
    with open(ready + ".tmp", "w") as out:
        out.write(" ".join(str(w.pid) for w in workers))
    import os; os.rename(ready + ".tmp", ready)
    while True:
        time.sleep(0.05)
""")


class Tree:
    """What a test needs to write the experiment and watch the processes."""

    def __init__(self, tmp_path: Path) -> None:
        self.name = unique_marker("wrk")
        self.script = tmp_path / "supervisor.py"
        self.script.write_text(SUPERVISOR)
        self.ready = tmp_path / "worker.pid"

    def services(self, workers: int = 1) -> str:
        return textwrap.dedent(f"""\
            services:
              - name: web
                run: [{sys.executable}, {self.script}, {self.name}, {self.ready}, "{workers}"]
                ready: {{exec: [test, -s, {self.ready}], timeout: 30s}}
            """)

    def worker_pids(self) -> list[int]:
        return [int(pid) for pid in self.ready.read_text().split()]

    def worker_pid(self) -> int:
        (pid,) = self.worker_pids()
        return pid


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


@pytest.fixture
def decoy(tree: Tree) -> Iterator[subprocess.Popen[bytes]]:
    """A process of the same name that no service started: it must never be touched."""
    proc = subprocess.Popen([tree.name, "-c", SLEEPER_CODE], executable=sys.executable,
                            stdin=subprocess.DEVNULL)
    yield proc
    release(proc)


class StateLog:
    """Every state /proc showed for a pid, polled from a thread while the run goes on."""

    def __init__(self, pid: int) -> None:
        self.pid, self.states, self._stop = pid, set[str](), threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.01):
            try:
                self.states.add(process_state(self.pid))
            except OSError:
                return

    def stop(self) -> set[str]:
        self._stop.set()
        self._thread.join(5)
        return self.states


def start_run(path: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(chaos_cmd("run", str(path)), cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def test_a_services_worker_is_frozen_and_a_same_named_process_elsewhere_is_not(
        tmp_path: Path, state_dir: Path, tree: Tree, decoy: subprocess.Popen[bytes]) -> None:
    path = tmp_path / "worker.yaml"
    path.write_text(f"title: freeze the web service's worker\n{tree.services()}" + textwrap.dedent(f"""\
        faults:
          - name: freeze-worker
            type: process.suspend
            target: {{process: {{name: {tree.name}, service: web}}}}
            duration: 3s
        """))
    watch_decoy = StateLog(decoy.pid)
    log = tmp_path / "run.log"
    runner = start_run(path, log)
    try:
        assert wait_until(lambda: tree.ready.exists(), 60) is not None, log.read_text()
        worker = tree.worker_pid()
        assert wait_until(lambda: process_state(worker) == "T", 30) is not None, log.read_text()
        assert runner.wait(60) == 0, log.read_text()
    finally:
        release(runner)
    decoy_states = watch_decoy.stop()
    assert decoy_states and "T" not in decoy_states, decoy_states
    assert decoy.poll() is None, "the decoy was hit"
    (journal,) = journals(tmp_path / "runs")
    (injection,) = journal["injections"]
    assert injection["identity"]["pid"] == worker
    assert injection["outcome"] == "reverted"


def test_a_worker_that_exists_only_once_the_service_runs_is_found_at_fault_start(
        tmp_path: Path, state_dir: Path, tree: Tree) -> None:
    """No `service:` scoping: a plain name that matches nothing before the services start is
    not refused up front (it used to be, exit 2 before anything started)."""
    path = tmp_path / "worker.yaml"
    path.write_text(f"title: freeze a worker by name\n{tree.services()}" + textwrap.dedent(f"""\
        faults:
          - type: process.suspend
            target: {{process: {{name: {tree.name}}}}}
            start: 500ms
            duration: 2s
        """))
    log = tmp_path / "run.log"
    runner = start_run(path, log)
    try:
        assert wait_until(lambda: tree.ready.exists(), 60) is not None, log.read_text()
        worker = tree.worker_pid()
        assert wait_until(lambda: process_state(worker) == "T", 30) is not None, log.read_text()
        assert runner.wait(60) == 0, log.read_text()
    finally:
        release(runner)
    (journal,) = journals(tmp_path / "runs")
    assert [i["identity"]["pid"] for i in journal["injections"]] == [worker]


def test_dry_run_says_which_targets_wait_for_the_services(
        tmp_path: Path, state_dir: Path, tree: Tree) -> None:
    other = unique_marker("wrk")
    path = tmp_path / "worker.yaml"
    path.write_text(f"title: dry\n{tree.services()}" + textwrap.dedent(f"""\
        faults:
          - name: scoped
            type: process.suspend
            target: {{process: {{name: {tree.name}, service: web}}}}
            duration: 3s
          - name: by-name
            type: process.kill
            target: {{process: {{name: {tree.name}}}}}
          - name: elsewhere
            type: process.kill
            target: {{process: {{name: {other}}}}}
        """))
    decoy = subprocess.Popen([other, "-c", SLEEPER_CODE], executable=sys.executable,
                             stdin=subprocess.DEVNULL)
    try:
        result = run_chaos("run", "--dry-run", str(path), timeout=60)
    finally:
        release(decoy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resolved when the fault starts, once service web runs" in result.stdout
    assert "matches nothing before the services start" in result.stdout
    # a selector that matches something now says it may match more once the services run
    assert f"-> pid {decoy.pid} " in result.stdout
    assert "may also match the services' processes" in result.stdout
    assert not tree.ready.exists(), "a dry run started a service"


def test_a_process_selector_naming_an_undeclared_service_is_refused_at_its_line(
        tmp_path: Path, state_dir: Path, tree: Tree) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(f"title: typo\n{tree.services()}" + textwrap.dedent(f"""\
        faults:
          - type: process.suspend
            target: {{process: {{name: {tree.name}, service: wbe}}}}
            duration: 3s
        """))
    result = run_chaos("validate", str(path), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    out = result.stdout + result.stderr
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "wbe" in text)
    assert f"typo.yaml:{line}:" in out, out
    assert "faults[0].target.process.service" in out and "did you mean" in out.lower(), out
    assert "Traceback" not in out


def test_max_targets_is_checked_at_fault_start_before_anything_is_injected(
        tmp_path: Path, state_dir: Path, tree: Tree) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(f"title: three workers, two allowed\n{tree.services(workers=3)}"
                    + textwrap.dedent(f"""\
        faults:
          - type: process.suspend
            target: {{process: {{name: {tree.name}, service: web}}}}
            start: 1s
            duration: 3s
        limits: {{max_targets: 2}}
        """))
    log = tmp_path / "run.log"
    runner = start_run(path, log)
    try:
        assert wait_until(lambda: tree.ready.exists(), 60) is not None, log.read_text()
        watched = [StateLog(pid) for pid in tree.worker_pids()]
        assert runner.wait(60) == 2, log.read_text()
    finally:
        release(runner)
    for watch in watched:
        assert "T" not in watch.stop(), "a worker was frozen although the guard refused"
    assert "matches 3 targets, more than limits.max_targets (2)" in log.read_text()
    (journal,) = journals(tmp_path / "runs")
    assert journal["exit_code"] == 2 and journal["injections"] == []
