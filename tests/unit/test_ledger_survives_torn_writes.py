"""The ledger is the source of truth after a crash: it must read back whatever was fsynced,
skip a torn last line, fence it off before the next append, and take concurrent writers."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from chaos.errors import StateDirUnusable
from chaos.safety.ledger import Ledger, read_records
from tests.support.state_disk import state_disk


def _intent(ledger: Ledger, run: str, ident: str) -> None:
    ledger.intent(run, ident, fault="process.suspend", target=f"pid {ident}",
                  revert={"adapter": "local.process", "action": "resume", "processes": []},
                  deadline=None)


def test_states_fold_in_protocol_order(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.start_run("r1", pid=1, pid_create_time=0.0, title="t")
    _intent(ledger, "r1", "a")
    _intent(ledger, "r1", "b")
    ledger.applied("r1", "a", {"adapter": "local.process", "action": "resume", "processes": [1]})
    ledger.reverted("r1", "b", by="runner")
    entries = {e.id: e for e in ledger.entries("r1")}
    assert entries["a"].state == "applied" and entries["a"].is_open
    assert entries["a"].revert["processes"] == [1]  # `applied` may refine the spec
    assert entries["b"].state == "reverted" and not entries["b"].is_open
    assert [e.id for e in ledger.open_entries()] == ["a"]
    ledger.revert_failed("r1", "a", by="watchdog", error="EPERM")
    assert ledger.open_entries()[0].error == "EPERM"  # a failed revert stays open for recover


def test_torn_last_line_is_skipped_and_fenced_off(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.start_run("r1", pid=1, pid_create_time=0.0, title="t")
    _intent(ledger, "r1", "a")
    with open(ledger.path("r1"), "ab") as handle:  # the writer died mid-line
        handle.write(b'{"v": 1, "ts": 1.0, "event": "reverted", "id": "a", "ru')
    assert [e.state for e in ledger.entries("r1")] == ["intent"]
    _intent(ledger, "r1", "b")
    assert [e.id for e in ledger.entries("r1")] == ["a", "b"]
    assert len(read_records(ledger.path("r1"))) == 3


def _writer(directory: str, worker: int) -> None:
    ledger = Ledger(Path(directory))
    for i in range(50):
        _intent(ledger, "shared", f"{worker}-{i}")


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(str(tmp_path), w)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    ids = [e.id for e in Ledger(tmp_path).entries("shared")]
    assert len(ids) == 200 and len(set(ids)) == 200


def test_prune_forgets_only_finished_closed_runs(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    for run in ("done", "open", "running"):
        ledger.start_run(run, pid=1, pid_create_time=0.0, title=run)
        _intent(ledger, run, f"{run}-1")
    ledger.reverted("done", "done-1", by="runner")
    ledger.finish_run("done", exit_code=0)
    ledger.finish_run("open", exit_code=5)
    ledger.prune(older_than=-1)
    assert sorted(ledger.run_ids()) == ["open", "running"]


def test_a_late_failure_does_not_reopen_a_reverted_entry_but_a_later_applied_does(
    tmp_path: Path,
) -> None:
    ledger = Ledger(tmp_path)
    ledger.start_run("r1", pid=1, pid_create_time=0.0, title="t")
    _intent(ledger, "r1", "a")
    _intent(ledger, "r1", "b")
    ledger.reverted("r1", "a", by="chaos recover")
    ledger.revert_failed("r1", "a", by="chaos recover", error="table not found")  # the loser
    ledger.reverted("r1", "b", by="watchdog")  # the runner was frozen before injecting b...
    ledger.applied("r1", "b")  # ...then woke up and injected it: open again
    entries = {e.id: e for e in ledger.entries("r1")}
    assert entries["a"].state == "reverted" and not entries["a"].is_open
    assert entries["b"].state == "applied" and entries["b"].is_open


def test_a_malformed_record_is_quarantined_with_its_line_and_the_rest_still_counts(
    tmp_path: Path,
) -> None:
    ledger = Ledger(tmp_path)
    ledger.start_run("r1", pid=1, pid_create_time=0.0, title="t")
    _intent(ledger, "r1", "a")
    ledger.append("r1", "intent", id="bad", fault="x", target="y", revert="resume it")
    ledger.append("r1", "applied", id="a", revert=[1, 2])
    _intent(ledger, "r1", "b")
    info = ledger.run_info("r1")
    assert [e.id for e in info.entries] == ["a", "b"]
    assert [(q.line, q.may_hide_injection) for q in info.quarantined] == [(3, True), (4, False)]
    assert str(info.quarantined[0]).startswith(f"{ledger.path('r1')}:3: intent record whose")
    ledger.finish_run("r1", exit_code=0)
    ledger.prune(older_than=-1)
    assert ledger.run_ids() == ["r1"]  # kept: a person has to look at that line


def test_a_record_cut_short_by_a_full_disk_is_refused_and_leaves_the_file_as_it_was(
    tmp_path: Path,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    with state_disk(tmp_path / "state", "1m") as disk:
        ledger = Ledger(disk.path)
        ledger.start_run("r1", pid=1, pid_create_time=0.0, title="t")
        disk.pad_ledger(ledger.path("r1"))
        disk.fill()
        before = ledger.path("r1").read_bytes()
        with pytest.raises(StateDirUnusable) as refused:
            _intent(ledger, "r1", "a")
        assert ledger.path("r1").read_bytes() == before  # no half record for readers
        assert refused.value.exit_code == 2 and str(disk.path) in str(refused.value)
        assert "No space left on device" in str(refused.value) and "df -h" in refused.value.hint
        assert ledger.reverted("r1", "a", by="runner") is False  # a closing record: no raise
        assert [(u.event, u.id) for u in ledger.unrecorded] == [("reverted", "a")]


def test_a_ledger_knows_when_someone_else_wrote_to_a_run_since_its_own_last_append(
    tmp_path: Path,
) -> None:
    runner, watchdog = Ledger(tmp_path), Ledger(tmp_path)
    runner.start_run("r1", pid=1, pid_create_time=0.0, title="t")
    _intent(runner, "r1", "a")
    assert not runner.written_by_others("r1")  # its reverts need not read the file back
    watchdog.reverted("r1", "a", by="watchdog")
    assert runner.written_by_others("r1") and watchdog.written_by_others("r1") is False
