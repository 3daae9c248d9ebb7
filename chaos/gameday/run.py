"""One game day: its experiments as `chaos run` subprocesses, in steps and parallel groups.

Why subprocesses and not `run_experiment` in this process: the engine owns its process's
SIGINT/SIGTERM handlers (two engines in one loop would replace each other's, and the first to
finish would remove them for the other), each run has its own watchdog that reverts when *its*
runner dies, and a crash or a stuck adapter in one experiment must not take the others down.
A subprocess also runs exactly what `chaos run` runs, Chaos Toolkit experiments included.
docs/gamedays.md has the whole argument, the aggregate journal's schema and the exit code.

Signals: the children get their own sessions (so a terminal's Ctrl-C reaches them only through
us, once); `interrupt` forwards the signal at once to every running `chaos run`, which reverts
and writes its journal, and no new experiment starts. A child that has not ended KILL_AFTER
seconds later is killed; its watchdog then reverts what it left.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import re
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos import __version__
from chaos.lifetime import die_with_parent
from chaos.errors import ExitCode, ExperimentInvalid, Problem, most_serious, truncate
from chaos.gameday.notify import Notifier
from chaos.model.gameday import ExperimentRef, GameDay
from chaos.records import (GameDayExperiment, GameDayRecord, RunRecord, Schedule, Tool,
                           new_run_id)
from chaos.records import files as journals
from chaos.reports import analysis, bundle
from chaos.reports.collection import Collection, from_gameday

if TYPE_CHECKING:
    from chaos.faults import FaultRegistry
    from chaos.reports.registry import ReporterRegistry
    from chaos.slo.probe_kinds import ProbeKinds

log = logging.getLogger(__name__)
KILL_AFTER = 120.0
ABORTS = {ExitCode.ABORTED, ExitCode.REVERT_FAILED, ExitCode.INTERRUPTED, ExitCode.TERMINATED}
CHAOS = (sys.executable, "-m", "chaos")


@dataclass
class Slot:
    """One experiment of the game day and what became of it."""

    index: int  # 1-based, in file order
    step: int  # 0-based step; a parallel group is one step
    parallel: bool
    ref: ExperimentRef
    directory: Path
    status: str = "pending"  # pending | running | done | skipped
    exit_code: int | None = None
    skipped: str = ""
    started: float | None = None
    finished: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)  # run, verdict, title from its journal

    @property
    def journal_path(self) -> Path:
        return self.directory / "journal.json"

    def record(self, root: Path) -> GameDayExperiment:
        """What the aggregate journal (at `root`) says of it."""
        ran = self.status == "done"
        return GameDayExperiment(
            self.index, self.step, self.parallel, self.ref.file, self.ref.path,
            dict(self.ref.vars), self.ref.weight, self.status, self.exit_code,
            self.skipped or None, self.started, self.finished,
            str(self.journal_path.relative_to(root)) if ran else None,
            str((self.directory / "output.log").relative_to(root)) if ran else None,
            run=self.summary.get("run"), verdict=self.summary.get("verdict"),
            title=self.summary.get("title"), reason=self.summary.get("reason"),
            layout=GameDayExperiment.with_layout(self.summary))


def load_gameday(path: str, variables: Mapping[str, str] | None = None, *,
                 reporters: ReporterRegistry | None = None) -> GameDay:
    """The game-day file, its `reports.formats` checked against the report formats that write a
    file: the registry's (default: the built-ins and the `chaos.reporters` plugins)."""
    from chaos.model.gameday import load_gameday as load
    from chaos.reports.registry import default_registry

    return load(path, variables, (reporters or default_registry()).with_files())


def check_experiments(gameday: GameDay, variables: Mapping[str, str],
                      uses: list[frozenset[str] | None] | None = None, *,
                      faults: FaultRegistry | None = None,
                      probes: ProbeKinds | None = None) -> dict[str, str]:
    """Load every experiment with the variables it will run with; report all problems at once
    (nothing starts when one file is wrong). Chaos Toolkit files are checked by chaos.ctk.
    Returns the experiments' titles by path, for the progress lines; `uses` receives the
    variables the game day and each experiment refer to (None: a Chaos Toolkit experiment,
    whose activities may read any configuration key). `faults` and `probes` default to the
    process-wide registries."""
    if uses is not None:
        uses.append(gameday.uses)
    from chaos.model.loader import ChaosToolkitFile
    from chaos.runner.load import load_experiment

    problems: list[Problem] = []
    titles: dict[str, str] = {}
    for ref in gameday.experiments:
        try:
            try:
                experiment = load_experiment(ref.path, experiment_vars(gameday, ref, variables),
                                             faults, probes)
                titles[ref.path] = experiment.title
                if uses is not None:
                    uses.append(experiment.uses)
            except ChaosToolkitFile as ctk:  # `chaos run` runs those through chaos.ctk
                from chaos.ctk.document import from_tree

                titles[ref.path] = from_tree(ctk.root, ctk.text, ctk.source).title
                if uses is not None:
                    uses.append(None)
        except ExperimentInvalid as exc:
            problems.append(Problem(ref.location, "", f"experiment {ref.file} is invalid:"))
            problems += exc.problems
    if problems:
        raise ExperimentInvalid(problems, source=gameday.source)
    return titles


def _passed_vars(path: str, variables: dict[str, str], faults: FaultRegistry | None = None,
                 probes: ProbeKinds | None = None) -> dict[str, str]:
    """The variables an experiment uses, of those the game day has for it: `chaos run` refuses
    a --var its file never uses (a typo), and game-day vars are meant for some experiments
    only. All of them for a Chaos Toolkit file (its activities may read any) or one that no
    longer loads (`chaos run` then says why)."""
    from chaos.runner.load import load_experiment

    try:
        uses = load_experiment(path, variables, faults, probes).uses
    except ExperimentInvalid:
        return variables
    return {name: value for name, value in variables.items() if name in uses}


passed_vars = _passed_vars  # the Argo export passes each pod what `chaos gameday run` would


def experiment_vars(gameday: GameDay, ref: ExperimentRef,
                    variables: Mapping[str, str]) -> dict[str, str]:
    """Game-day vars, then the entry's vars, then --var: the later wins."""
    return {**gameday.vars, **ref.vars, **variables}


class GameDayRun:
    def __init__(self, gameday: GameDay, out: Path, *, variables: Mapping[str, str] | None = None,
                 state_dir: Path | None = None, notifier: Notifier | None = None,
                 echo: Callable[[str], None] = lambda line: None,
                 command: Sequence[str] = CHAOS, titles: Mapping[str, str] | None = None,
                 reporters: ReporterRegistry | None = None, faults: FaultRegistry | None = None,
                 probes: ProbeKinds | None = None) -> None:
        self.gameday = gameday
        self.id = new_run_id()
        self.dir = out / self.id
        self.variables = dict(variables or {})
        self.state_dir = state_dir
        self.notifier = notifier or Notifier(gameday.notify)
        self.echo = echo
        self.command = tuple(command)
        self.titles = dict(titles or {})
        # the registries this process reads (None: the defaults); each `chaos run` child
        # loads the installed ones, as a separate process must
        self.reporters, self.faults, self.probes = reporters, faults, probes
        self.slots: list[Slot] = []
        for step_index, step in enumerate(gameday.steps):
            for ref in step.experiments:
                index = len(self.slots) + 1
                self.slots.append(Slot(index, step_index, step.parallel, ref,
                                       self.dir / f"{index:02d}-{_slug(ref.file)}"))
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._signal: int | None = None
        self.stopped = ""  # why the game day stopped early
        self.started = self.finished = 0.0
        self.reports: dict[str, str] = {}

    # --- control
    def interrupt(self, signum: int) -> None:
        """SIGINT/SIGTERM: forward to every running experiment now; start nothing new."""
        name = signal.Signals(signum).name
        if self._signal is not None:
            self.echo(f"{name} again: the running experiments are reverting; please wait")
            return
        self._signal = signum
        for proc in self._procs.values():
            _send(proc, signum)
        self._stop(f"interrupted by {name}")
        if self._procs:
            self.echo(f"reverting the {len(self._procs)} running experiment(s) and writing "
                      "their journals; no new one starts")
        asyncio.get_running_loop().call_later(KILL_AFTER, self._kill_stragglers)

    def _kill_stragglers(self) -> None:
        for proc in self._procs.values():
            log.warning("chaos run (pid %s) did not end %ss after the signal: killing it; its "
                        "watchdog reverts what it left", proc.pid, KILL_AFTER)
            _send(proc, signal.SIGKILL)

    def _stop(self, why: str) -> None:
        if not self.stopped:
            self.stopped = why
            self.echo(f"game day stops: {why}")
            self.notifier.send("aborted", {**self._about(), "reason": why, "running": [
                s.ref.file for s in self.slots if s.status == "running"]})

    # --- the run
    async def run(self) -> int:
        self.started = time.time()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.write()
        self.notifier.send("started", {**self._about(), "experiments": [
            {"index": s.index, "file": s.ref.file, "step": s.step, "parallel": s.parallel}
            for s in self.slots]})
        for step in range(len(self.gameday.steps)):
            batch = [s for s in self.slots if s.step == step]
            if self.stopped:
                break
            await asyncio.gather(*(self._one(s) for s in batch))
            self._after_step(batch)
        for s in self.slots:
            if s.status == "pending":
                s.status, s.skipped = "skipped", f"the game day stopped early: {self.stopped}"
                s.summary = {"title": self.titles.get(s.ref.path)}
        self.finished = time.time()
        code = self.exit_code()
        self.write(code)
        collection = self.collection()
        score = analysis.resilience_score(analysis.facts(e) for e in collection.entries)
        try:
            self.reports = bundle.write(collection, self.dir, self.gameday.formats,
                                        reporters=self.reporters)
        except Exception as exc:  # a report bug must not hide the results: the journals stand
            log.exception("writing the reports failed")
            self.echo(f"chaos: writing the reports failed ({type(exc).__name__}: {exc}); "
                      f"`chaos report {self.dir / 'gameday.json'} --format all -o DIR` retries")
        self.write(code, score)
        self.notifier.send("finished", {
            **self._about(), "exit_code": code, "stopped": self.stopped or None,
            "score": score, "duration": round(self.finished - self.started, 3),
            "directory": str(self.dir), "reports": self.reports,
            "experiments": [{k: v for k, v in s.record(self.dir).to_json().items()
                             if k in ("index", "file", "status", "exit_code", "verdict",
                                      "reason", "run", "skipped")} for s in self.slots]})
        await self.notifier.drain()
        return code

    def exit_code(self) -> int:
        codes = [s.exit_code for s in self.slots if s.exit_code is not None]
        if self._signal is not None:
            codes.append(ExitCode.INTERRUPTED if self._signal == signal.SIGINT
                         else ExitCode.TERMINATED)
        return most_serious(codes)

    def _after_step(self, batch: list[Slot]) -> None:
        codes = [s.exit_code for s in batch if s.exit_code is not None]
        failed = [s for s in batch if s.exit_code]
        if any(c == ExitCode.REVERT_FAILED for c in codes):
            self._stop("a revert failed (something may still be injected: `chaos status`)")
        elif self.gameday.stop_on == "first_abort" and any(c in ABORTS for c in codes):
            aborted = next(s for s in batch if s.exit_code in ABORTS)
            self._stop(f"{aborted.ref.shown} ended with exit {aborted.exit_code} "
                       f"({aborted.summary.get('verdict')}; stop_on: first_abort)")
        elif self.gameday.stop_on == "first_failure" and failed:
            self._stop(f"{failed[0].ref.shown} failed with exit {failed[0].exit_code} "
                       "(stop_on: first_failure)")

    async def _one(self, slot: Slot) -> None:
        if self.stopped:
            return
        slot.directory.mkdir(parents=True, exist_ok=True)
        argv = [*self.command, "run", slot.ref.path, "--journal", str(slot.journal_path),
                "--runs-dir", str(slot.directory), "-q"]
        for name, value in _passed_vars(slot.ref.path, experiment_vars(
                self.gameday, slot.ref, self.variables), self.faults, self.probes).items():
            argv += ["--var", f"{name}={value}"]
        if self.state_dir is not None:
            argv += ["--state-dir", str(self.state_dir)]
        total = len(self.slots)
        with open(slot.directory / "output.log", "wb") as output:
            slot.status, slot.started = "running", time.time()
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=output,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                # a game day killed outright (kill -9, OOM) stops its experiments: SIGTERM makes
                # each revert at once and exit 143 rather than hold its faults to the end
                preexec_fn=die_with_parent(signal.SIGTERM),
                env={**os.environ, "CHAOS_GAMEDAY": self.id})
            self._procs[slot.index] = proc
            if self._signal is not None:  # the signal came while it was starting
                _send(proc, self._signal)
            title = self.titles.get(slot.ref.path)
            self.echo(f"[{slot.index}/{total}] started: {title or slot.ref.shown}"
                      + (f" ({slot.ref.shown})" if title else "") + f", pid {proc.pid}")
            returncode = await proc.wait()
            del self._procs[slot.index]
        slot.finished, slot.status = time.time(), "done"
        slot.exit_code = self._settle(slot, returncode)
        verdict, reason = slot.summary.get("verdict"), slot.summary.get("reason")
        self.echo(f"[{slot.index}/{total}] {verdict}: "
                  f"{slot.summary.get('title') or slot.ref.shown} (exit {slot.exit_code}, "
                  f"{slot.finished - slot.started:.1f}s; journal {slot.journal_path})"
                  + (f"\n      why: {truncate(str(reason), 300)}"
                     if verdict != "held" and reason else ""))

    def _settle(self, slot: Slot, returncode: int) -> int:
        """The experiment's exit code, and a journal for it even when `chaos run` left none."""
        code = returncode
        if returncode < 0 or returncode not in set(ExitCode):
            code = ExitCode.REVERT_FAILED
        try:  # checked as the reports read it: a damaged journal must not stop them
            record = journals.read(slot.journal_path)
        except ValueError:
            tail = _tail(slot.directory / "output.log")
            why = (f"chaos run ended with {_returned(returncode)} and wrote no journal"
                   + (f": {tail}" if tail else ""))
            if code == ExitCode.REVERT_FAILED:
                why += "; its watchdog reverts what it left - check `chaos status`"
            record = RunRecord.error(slot.ref.file, code, why)
            journals.write(slot.journal_path, record.to_json())
        slot.summary = {"run": record.run, "verdict": record.verdict,
                        "title": record.experiment.title, "reason": record.reason}
        return int(code)

    # --- records
    def _about(self) -> dict[str, Any]:
        gd = self.gameday
        return {"gameday": self.id, "title": gd.title, "source": gd.source,
                "owners": list(gd.owners), "host": platform.node()}

    def document(self, code: int | None = None, score: float | None = None) -> GameDayRecord:
        gd = self.gameday
        return GameDayRecord(
            gameday=self.id, title=gd.title, source=gd.source, owners=tuple(gd.owners),
            host=platform.node(), sha256=gd.source_hash, description=gd.description,
            tool=Tool("chaos", __version__),
            schedule=Schedule(gd.schedule.cron, gd.schedule.timezone) if gd.schedule else None,
            stop_on=gd.stop_on, started=self.started, finished=self.finished or None,
            duration=round(self.finished - self.started, 3) if self.finished else None,
            exit_code=code, stopped=self.stopped or None, score=score,
            experiments=tuple(s.record(self.dir) for s in self.slots),
            reports=dict(self.reports))

    def write(self, code: int | None = None, score: float | None = None) -> None:
        journals.write(self.dir / "gameday.json", self.document(code, score).to_json())

    def collection(self) -> Collection:
        record = self.document(self.exit_code())
        return Collection(self.gameday.title, tuple(from_gameday(record, self.dir)),
                          record.to_json(), self.gameday.owners)


def _send(proc: asyncio.subprocess.Process, signum: int) -> None:
    try:
        proc.send_signal(signum)
    except ProcessLookupError:
        pass


def _slug(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(path).stem)[:40] or "experiment"


def _returned(code: int) -> str:
    if code >= 0:
        return f"exit {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


def _tail(path: Path, limit: int = 300) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return " ".join(text.splitlines()[-3:])[-limit:]
