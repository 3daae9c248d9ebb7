"""Probes are sampled open-loop: while the service hangs they keep firing on their schedule,
each timed from its intended send time, so a freeze is seen as it happens (no coordinated
omission) and a guardrail reverts it long before its planned end.

Judged from outside: the test freezes a real demo service itself (SIGSTOP/SIGCONT) and counts the
samples sent while it was frozen; the CLI run is watched through /proc of the frozen process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.slo.checks import Sample
from chaos.model.schema import Obj
from chaos.slo.probe_kinds import ProbeKind, new_probe_kinds
from chaos.slo.probes import Probe
from chaos.slo.sampler import Sampler, in_flight_bound
from tests.conftest import (
    ROOT,
    chaos_cmd,
    free_port,
    journals,
    process_state,
    processes_matching,
    release,
    wait_until,
)

EVERY, TIMEOUT, FREEZE = 0.25, 1.0, 3.0


@pytest.fixture
def demo() -> Iterator[tuple[int, int]]:
    """The bundled demo service, owned by the test: (pid, port)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "chaos.demo.service", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    assert wait_until(listening, 20) is not None
    yield proc.pid, port
    release(proc, signal.SIGTERM)


def test_samples_keep_their_schedule_while_the_service_is_frozen(
        demo: tuple[int, int]) -> None:
    pid, port = demo
    probe = Probe("home", "http", {"url": f"http://127.0.0.1:{port}/", "timeout": TIMEOUT})

    async def run() -> tuple[list[Sample], float, float]:
        sampler = Sampler([probe], lambda s: None, lambda e: pytest.fail(str(e)))
        sampler.start(EVERY)
        await asyncio.sleep(1.0)
        os.kill(pid, signal.SIGSTOP)
        frozen = time.monotonic()
        await asyncio.sleep(FREEZE)
        resumed = time.monotonic()
        os.kill(pid, signal.SIGCONT)
        await asyncio.sleep(1.0)
        end = time.monotonic()
        await sampler.settle(end, {"home"})
        await sampler.stop()
        return sampler.between(0, end), frozen, resumed

    samples, frozen, resumed = asyncio.run(run())
    during = [s for s in samples if frozen <= s.at < resumed]
    # a closed loop takes about FREEZE / TIMEOUT = 3 here; the schedule asks for 12
    assert len(during) >= 0.9 * (resumed - frozen) / EVERY, [s.at - frozen for s in during]
    for s in during:
        if s.at + TIMEOUT <= resumed:  # nobody could answer it in time
            assert not s.ok and s.timed_out and s.latency == TIMEOUT, s
        else:  # answered once resumed, and timed from when it was meant to leave
            assert s.latency >= resumed - s.at - 0.005 or s.timed_out, s
    assert any(s.ok for s in samples if s.at >= resumed), "the service answers again"
    assert all(s.ok for s in samples if s.at < frozen - TIMEOUT)


def test_a_sample_beyond_the_in_flight_bound_is_recorded_as_failed() -> None:
    """A probe whose samples take 1 s to give up after their 100 ms timeout (a slow cleanup):
    at most `in_flight_bound` run at once, and each slot past the bound is a failed, timed-out
    sample, never a pass and never silently skipped."""
    running = peak = 0

    async def slow_to_give_up(spec: object) -> tuple[bool, str]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(1.0)
            raise
        finally:
            running -= 1
        return True, "never"

    kinds = new_probe_kinds()
    kinds.add(ProbeKind("slow-to-give-up", Obj({}), slow_to_give_up, default_timeout=1.0))
    probe = Probe("stuck", "slow-to-give-up", {"timeout": 0.1}, kinds)
    bound = in_flight_bound(probe, 0.05)
    assert bound == 4

    async def run() -> list[Sample]:
        sampler = Sampler([probe], lambda s: None, lambda e: pytest.fail(str(e)))
        sampler.start(0.05)
        await asyncio.sleep(1.0)
        await sampler.stop()
        return sampler.samples

    samples = asyncio.run(run())
    assert peak == bound
    refused = [s for s in samples if s.detail.startswith("not sent: ")]
    assert len(refused) >= 10, [s.detail for s in samples]
    assert all(not s.ok and s.timed_out for s in samples)
    assert "in-flight limit 4" in refused[0].detail


QUICKSTART_WITH_GUARDRAIL = """\
title: quickstart, guarded
services:
  - name: demo
    run: ["${{python}}", -m, chaos.demo.service, --port, "{port}"]
    ready: {{http: "http://127.0.0.1:{port}/health", timeout: 30s}}
hypothesis:
  probes:
    - name: home
      http: {{url: "http://127.0.0.1:{port}/", status: [200], timeout: 1s}}
  checks:
    - home >= 99%
    - home.latency.p95 < 500ms
  before: {{window: 3s, every: 250ms}}
  during: {{every: 250ms, abort: [home < 50%]}}
  after: {{settle: 1s, window: 3s, recover_within: 5s}}
faults:
  - name: freeze-demo
    type: process.suspend
    target: {{service: demo}}
    start: 1s
    duration: 3s
limits: {{max_duration: 1m, max_targets: 1}}
"""


def test_a_guardrail_on_a_probe_reverts_a_freeze_long_before_its_end(
        tmp_path: Path, state_dir: Path) -> None:
    port = free_port()
    path = tmp_path / "guarded.yaml"
    path.write_text(QUICKSTART_WITH_GUARDRAIL.format(port=port))
    runner = subprocess.Popen(chaos_cmd("run", str(path)), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        found = wait_until(lambda: processes_matching(f"--port {port}"), 60)
        assert found is not None, "the demo service never started"
        (demo,) = processes_matching(f"--port {port}")
        stopped_at = resumed_at = None
        deadline = time.monotonic() + 60
        while runner.poll() is None and time.monotonic() < deadline:
            try:
                state = process_state(demo.pid)
            except (FileNotFoundError, ProcessLookupError):
                break
            now = time.monotonic()
            if state in ("T", "t") and stopped_at is None:
                stopped_at = now
            elif state not in ("T", "t") and stopped_at is not None and resumed_at is None:
                resumed_at = now
            time.sleep(0.005)
        output, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 4, output
    assert "home < 50%" in output, output
    assert stopped_at is not None and resumed_at is not None, output
    frozen_for = resumed_at - stopped_at
    # the guardrail fires once the failures outweigh the answers in its 3 s window (~2 s in);
    # a closed-loop sampler only sees the freeze after it has ended
    assert frozen_for < FREEZE - 0.3, f"frozen for {frozen_for:.2f}s of {FREEZE}s"
    (journal,) = journals(tmp_path / "runs")
    assert journal["exit_code"] == 4
    assert [i["reverted_by"] for i in journal["injections"]] != []
