"""The engine, in-process: stops, signals and cancellation - during inject, while holding, and
during the cleanup itself - never skip a revert, and every revert is recorded."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from chaos.errors import ExitCode
from tests.support.inprocess import Harness, faults

THREE = (("a", 0, 60), ("b", 1, 60), ("c", 2, 60))


async def until_held(h: Harness, count: int) -> None:
    while len(h.adapter.held) < count:
        await asyncio.sleep(0)


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, ExitCode.INTERRUPTED),
                                         (signal.SIGTERM, ExitCode.TERMINATED)])
@pytest.mark.parametrize("at", [0.5, 1.5, 30])
def test_a_signal_reverts_everything_and_exits_130_or_143(
        tmp_path: Path, signum: int, code: ExitCode, at: float) -> None:
    h = Harness(faults(*THREE), tmp_path)

    async def interrupt(h: Harness) -> None:
        await h.clock.sleep(at)
        h.lifecycle.interrupt(signum)

    result = h.run(interrupt)
    assert result.exit_code == code
    assert result.reason == f"interrupted by {signal.Signals(signum).name}"
    assert not h.adapter.held and h.ledger.open_entries("run-1") == []
    assert "run.interrupted" in h.names()
    assert [c.at for c in h.adapter.calls if c.action == "revert"] == [h.clock.monotonic()] * len(
        h.adapter.of("revert"))  # at once, not at the faults' ends


@pytest.mark.parametrize("code", [ExitCode.ABORTED, ExitCode.OK, ExitCode.INVALID])
@pytest.mark.parametrize("at", [0.5, 2.5, 59])
def test_stop_reverts_everything_at_once_with_its_outcome(
        tmp_path: Path, code: ExitCode, at: float) -> None:
    h = Harness(faults(*THREE), tmp_path)

    async def stop(h: Harness) -> None:
        await h.clock.sleep(at)
        h.engine.stop(code, "stopped by the test")

    result = h.run(stop)
    assert result.exit_code == code and result.reason == "stopped by the test"
    assert h.adapter.of("revert") == h.adapter.of("inject")[::-1]
    assert {c.at for c in h.adapter.calls if c.action == "revert"} == {1000.0 + at}
    assert h.ledger.open_entries("run-1") == []


def test_a_guardrail_abort_reverts_everything_and_exits_4(tmp_path: Path) -> None:
    h = Harness(faults(*THREE), tmp_path)

    async def breach(h: Harness) -> None:
        await h.clock.sleep(10)
        h.engine.lifecycle.stop(ExitCode.ABORTED, "guardrail breached: availability < 90%")

    result = h.run(breach)
    assert result.exit_code == ExitCode.ABORTED == 4
    assert result.verdict == "aborted"
    assert sorted(h.adapter.of("revert")) == ["a/0", "b/0", "c/0"] and not h.adapter.held


def test_a_second_signal_while_reverting_does_not_skip_reverts(tmp_path: Path) -> None:
    h = Harness(faults(*THREE), tmp_path)
    release = asyncio.Event()

    def slow_revert(action: str, label: str) -> object:
        if action == "revert" and label == "c/0":
            h.lifecycle.interrupt(signal.SIGINT)  # the second Ctrl-C, mid-revert
            return release.wait()
        return None

    h.adapter.hook = slow_revert  # type: ignore[assignment]

    async def interrupt(h: Harness) -> None:
        await h.clock.sleep(5)
        h.lifecycle.interrupt(signal.SIGTERM)
        await asyncio.sleep(0.01)
        release.set()

    result = h.run(interrupt)
    assert result.exit_code == ExitCode.TERMINATED  # the first signal decides
    assert h.adapter.of("revert") == ["c/0", "b/0", "a/0"] and not h.adapter.held
    assert h.ledger.open_entries("run-1") == []


@pytest.mark.parametrize("blocked", ["c/0", "b/0", "a/0"])
def test_cancelling_the_run_during_cleanup_still_reverts_and_records_everything(
        tmp_path: Path, blocked: str) -> None:
    """The cleanup is shielded: the caller's cancellation waits for every revert and its
    record, then propagates."""
    h = Harness(faults(*THREE), tmp_path)
    reverting = asyncio.Event()
    release = asyncio.Event()

    def slow_revert(action: str, label: str) -> object:
        if action == "revert" and label == blocked:
            reverting.set()
            return release.wait()
        return None

    h.adapter.hook = slow_revert  # type: ignore[assignment]

    async def main() -> None:
        run = asyncio.create_task(h.clock.run(h.engine.run()))
        await until_held(h, 3)
        h.engine.stop(ExitCode.ABORTED, "guardrail breached")
        await reverting.wait()
        run.cancel()  # e.g. a caller's timeout, mid-cleanup
        for _ in range(100):
            await asyncio.sleep(0)
        assert not run.done()  # still reverting
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(main())
    assert h.adapter.of("revert") == ["c/0", "b/0", "a/0"] and not h.adapter.held
    assert h.ledger.open_entries("run-1") == []
    assert h.ledger.events("run-1").count("reverted") >= 1


def test_cancelling_the_run_while_it_works_reverts_then_propagates(tmp_path: Path) -> None:
    h = Harness(faults(*THREE), tmp_path)

    async def main() -> None:
        run = asyncio.create_task(h.clock.run(h.engine.run()))
        await until_held(h, 3)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(main())
    assert h.adapter.of("revert") == ["c/0", "b/0", "a/0"]
    assert h.ledger.open_entries("run-1") == []


@pytest.mark.parametrize("count,blocked", [(1, 0), (2, 0), (2, 1), (3, 1), (3, 2)])
def test_a_stop_during_inject_reverts_the_whole_intent(tmp_path: Path, count: int,
                                                       blocked: int) -> None:
    h = Harness(faults(("a", 0, 60)), tmp_path, {"targets": {"a": count}})
    injecting = asyncio.Event()

    def hang(action: str, label: str) -> object:
        if action == "inject" and label == f"a/{blocked}":
            injecting.set()
            return asyncio.Event().wait()  # never answers: only cancellation ends it
        return None

    h.adapter.hook = hang  # type: ignore[assignment]

    async def stop(h: Harness) -> None:
        await injecting.wait()
        h.lifecycle.interrupt(signal.SIGINT)

    result = h.run(stop)
    assert result.exit_code == ExitCode.INTERRUPTED
    assert h.adapter.of("revert") == [f"a/{k}" for k in range(count)][::-1]
    assert h.ledger.open_entries("run-1") == []


def test_a_signal_before_the_run_starts_injects_nothing(tmp_path: Path) -> None:
    h = Harness(faults(*THREE), tmp_path)
    h.lifecycle.interrupt(signal.SIGINT)
    result = h.run()
    assert result.exit_code == ExitCode.INTERRUPTED
    assert h.adapter.calls == [] and h.ledger_events() == []


@pytest.mark.parametrize("at", [5, 20])
def test_a_revert_made_elsewhere_is_followed_not_repeated(tmp_path: Path, at: float) -> None:
    """`chaos stop` (another process) reverted and recorded it: the run follows the ledger."""
    h = Harness(faults(("a", 0, 60)), tmp_path)

    async def stop_elsewhere(h: Harness) -> None:
        await h.clock.sleep(at)
        h.adapter.held.discard("a/0")
        h.ledger.written_elsewhere("run-1", "reverted", id="run-1.0.0", by="chaos stop",
                                   outcome="reverted")

    result = h.run(stop_elsewhere)
    assert h.adapter.of("revert") == []  # not reverted twice
    (injection,) = result.injections
    assert injection.by == "chaos stop" and injection.reverted_at == pytest.approx(at, abs=0.3)
    assert result.exit_code == ExitCode.OK and "before its planned end" in result.reason
