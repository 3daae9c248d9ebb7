"""One Chaos Toolkit experiment run from start to journals, as chaos.runner.session does for
native ones: the same events, our journal (chaos.journal/v1, so the terminal summary, JUnit and
`chaos report` work) and Chaos Toolkit's journal (so its tools work), written atomically."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos.ctk.document import CtkExperiment
from chaos.ctk.engine import CtkEngine, CtkOptions, CtkResult
from chaos.ctk.keeper import KEEPER
from chaos.ctk.verdicts import activity_error, tolerance_text
from chaos.runner import journal
from chaos.runner.engine import new_run_id
from chaos.runner.events import EventBus, Subscriber
from chaos.runner.lifecycle import Lifecycle
from chaos.runner.session import RunOptions

if TYPE_CHECKING:
    from chaos.adapters.registry import AdapterRegistry
    from chaos.slo.probe_kinds import ProbeKinds

CTK_JOURNAL = "chaostoolkit-journal.json"
JOURNAL_FORMATS = ("chaos", "ctk")


@dataclass(frozen=True)
class CtkRecord:
    result: CtkResult
    journal: dict[str, Any]  # ours
    journal_path: Path  # the journal of the requested format
    out_dir: Path


async def run_ctk_experiment(experiment: CtkExperiment, options: CtkOptions,
                             run_options: RunOptions, subscribers: Iterable[Subscriber] = (),
                             journal_format: str = "chaos",
                             lifecycle: Lifecycle | None = None,
                             adapters: AdapterRegistry | None = None,
                             probes: ProbeKinds | None = None) -> CtkRecord:
    """One run. A caller that handles signals routes chaos.ctk.engine.SIGNALS to `lifecycle`.
    The faults that its chaos.ctk.actions inject are loaded and run with `adapters` and
    `probes` (default: the process-wide registries)."""
    if run_options.state_dir is not None:
        # chaos.ctk.actions are called by chaoslib with the file's arguments only: they (and
        # their watchdogs) find the state dir in the environment
        os.environ["CHAOS_STATE_DIR"] = str(run_options.state_dir)
    bus = EventBus()
    recorder = journal.Recorder()
    bus.subscribe(recorder)
    for subscriber in subscribers:
        bus.subscribe(subscriber)
    engine = CtkEngine(experiment, options, bus, run_id=new_run_id(), lifecycle=lifecycle)
    out_dir = run_options.runs_dir / engine.run_id
    started = time.time()
    with KEEPER.using(adapters, probes):
        result = await engine.run()
    # the title as chaoslib substituted it (`${name}` from configuration)
    title = (result.journal.get("experiment") or {}).get("title")
    ours = journal.document(summary(experiment, title if isinstance(title, str) else None),
                            recorder, result, started, time.time())
    ours_path, ctk_path = out_dir / "journal.json", out_dir / CTK_JOURNAL
    if journal_format == "ctk":
        ctk_path = run_options.journal_path or ctk_path
    else:
        ours_path = run_options.journal_path or ours_path
    ours["chaostoolkit"] = chaostoolkit_section(result, ctk_path)
    journal.write(ctk_path, result.journal)
    journal.write(ours_path, ours)
    return CtkRecord(result, ours, ctk_path if journal_format == "ctk" else ours_path, out_dir)


def summary(experiment: CtkExperiment, title: str | None = None) -> dict[str, Any]:
    hyp = experiment.document.get("steady-state-hypothesis") or {}
    probes = [p for p in hyp.get("probes") or [] if isinstance(p, Mapping)]
    return {
        "title": title or experiment.title, "source": experiment.source,
        "sha256": experiment.source_hash, "description": experiment.description,
        "tags": experiment.tags, "variables": {}, "services": [], "faults": [],
        "checks": [f"{p.get('name')} {tolerance_text(p.get('tolerance'))}" for p in probes],
        "slo": None, "format": "chaostoolkit",
    }


def chaostoolkit_section(result: CtkResult, ctk_path: Path) -> dict[str, Any]:
    def runs(key: str) -> list[dict[str, Any]]:
        # what a control appended that is no activity's run (chaoslib allows it) is left out
        return [{"activity": r["activity"].get("name"), "type": r["activity"].get("type"),
                 "status": r.get("status"), "error": activity_error(r) or killed(r)}
                for r in result.journal.get(key) or []
                if isinstance(r, Mapping) and isinstance(r.get("activity"), Mapping)]

    return {"journal": str(ctk_path), "status": result.journal.get("status"),
            "deviated": result.journal.get("deviated"),
            "rollback_strategy": result.rollback_strategy,
            "hypothesis_strategy": result.hypothesis_strategy,
            "method": runs("run"), "rollbacks": runs("rollbacks")}


def killed(run: Mapping[str, Any]) -> str:
    """A process-provider activity whose subprocess died of a signal (ours, when the run was
    interrupted, or anyone's): chaoslib records it as succeeded, with a negative status."""
    output = run.get("output")
    provider = (run.get("activity") or {}).get("provider") or {}
    if provider.get("type") == "process" and isinstance(output, Mapping):
        status = output.get("status")
        if isinstance(status, int) and status < 0:
            import signal

            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-status).name}"
            return f"killed by signal {-status}"
    return ""


def _mark(run: Mapping[str, Any]) -> str:
    if run["status"] != "succeeded":
        return "FAIL"
    return "KILL" if run.get("error") else "ok  "


def activity_lines(ours: Mapping[str, Any]) -> list[str]:
    """Method and rollback activities for the terminal summary (it shows checks and faults)."""
    section = ours.get("chaostoolkit") or {}
    lines = []
    for key, label in (("method", "method"), ("rollbacks", "rollbacks")):
        runs = section.get(key) or []
        if runs:
            lines.append(f"  {label}:")
            lines += [f"    [{_mark(r)}] {r['activity']}"
                      + (f"  ({r['error']})" if r.get("error") else "") for r in runs]
    if section:
        lines.append(f"  chaostoolkit: status {section['status']}, deviated "
                     f"{str(section['deviated']).lower()}, rollbacks "
                     f"{'played' if section['rollbacks'] else 'not played'} "
                     f"(strategy {section['rollback_strategy']}); journal {section['journal']}")
    return lines


def variables(pairs: Mapping[str, str], var_files: Iterable[str]) -> tuple[dict[str, Any],
                                                                         dict[str, Any]]:
    """(configuration, secrets) overrides from --var NAME[:TYPE]=VALUE and --var-file, as
    Chaos Toolkit reads them (chaoslib's convert_vars and merge_vars)."""
    from chaoslib import convert_vars, merge_vars

    from chaos.errors import UsageError

    files = list(var_files)
    for path in files:
        if not Path(path).is_file():
            raise UsageError(f"--var-file {path}: no such file")
        _check_var_file(path)
    converted: dict[str, Any] = {}
    for name, value in pairs.items():
        try:
            converted.update(convert_vars([f"{name}={value}"]))
        except (ValueError, AttributeError) as exc:
            raise UsageError(f"--var {name}={value}: {exc}",
                             hint="NAME=VALUE, or NAME:TYPE=VALUE with TYPE int, float or "
                                  "bytes") from None
    try:
        config, secrets = merge_vars(converted, files)
    except (ValueError, AttributeError) as exc:
        raise UsageError(f"--var-file: {exc}",
                         hint="NAME=VALUE or NAME:int=VALUE; var files are JSON/YAML with "
                              "`configuration`/`secrets`, or .env files") from None
    return dict(config), dict(secrets)


def _check_var_file(path: str) -> None:
    """chaoslib's merge_vars logs a var file it cannot parse, or whose keys it does not read,
    and runs on without it - with the experiment's defaults. Ours refuses it (exit 2)."""
    import json

    import yaml

    from chaos.errors import UsageError

    from chaos.errors import ExperimentInvalid
    from chaos.model.source import read

    try:  # bounded, regular files only (a FIFO would hang, /dev/zero never ends)
        text = read(path).text
    except ExperimentInvalid as exc:
        problem = exc.problems[0]
        raise UsageError(f"--var-file {problem}" if problem.location else
                         f"--var-file {path}: {problem}") from None
    suffix = Path(path).suffix
    hint = ("a var file is JSON or YAML: {\"configuration\": {\"NAME\": VALUE}, "
            "\"secrets\": {\"SCOPE\": {\"NAME\": VALUE}}}; or a .env file of NAME=VALUE lines")
    if suffix in (".yaml", ".yml", ".json"):
        try:
            data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--var-file {path}:{exc.lineno}:{exc.colno}: not valid JSON: "
                             f"{exc.msg}", hint=hint) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            what = getattr(exc, "problem", None) or exc
            raise UsageError(f"--var-file {path}{where}: not valid YAML: {what}",
                             hint=hint) from None
        if not text.strip():
            return  # empty: nothing to read, as in Chaos Toolkit
        if not isinstance(data, dict):
            raise UsageError(f"--var-file {path}: expected a mapping with `configuration` "
                             f"and/or `secrets`, got {type(data).__name__}", hint=hint)
        unread = sorted(str(k) for k in data if k not in ("configuration", "secrets"))
        if unread:
            raise UsageError(f"--var-file {path}: {', '.join(unread)}: not read (only "
                             "`configuration` and `secrets` are); move "
                             f"{'it' if len(unread) == 1 else 'them'} under `configuration`",
                             hint=hint)
        for key in ("configuration", "secrets"):
            if not isinstance(data.get(key, {}), dict):
                raise UsageError(f"--var-file {path}: `{key}` is a mapping of names to values",
                                 hint=hint)
        return
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.strip().startswith("#") and "=" not in line:
            raise UsageError(f"--var-file {path}:{number}: expected NAME=VALUE, got "
                             f"{line.strip()[:60]!r}", hint=hint)


def live_activities(view: Any) -> Subscriber:
    """Activity lines for the live view (chaos.cli.view.LiveView.line), which knows faults,
    phases and checks but not Chaos Toolkit activities."""
    from chaos.runner.events import Event

    def show(event: Event) -> None:
        d = event.data
        if event.name == "activity.started":
            view.line(event.t, f"{d['phase']} {d['type']}: {d['activity']}"
                      + (" [in background]" if d["background"] else ""))
        elif event.name == "activity.finished":
            error = f": {d['error']}" if d.get("error") else ""
            view.line(event.t, f"  {d['status']} {d['activity']}{error}")

    return show


def print_ctk_plan(experiments: Iterable[CtkExperiment], echo: Any) -> None:
    """`--dry-run`: what would run, in order; nothing is called."""
    for exp in experiments:
        echo(f"── {exp.title}  ({exp.source})  "
             "[dry run: Chaos Toolkit experiment, nothing runs]")
        for path, activity in exp.activities():
            name = activity.get("name") or f"ref {activity.get('ref')}"
            provider = activity.get("provider") or {}
            what = (f"{provider.get('module')}.{provider['func']}" if provider.get("func")
                    else provider.get("path") or provider.get("url") or "")
            echo(f"  {path}: {activity.get('type', 'ref')} {name}  "
                 f"({provider.get('type', '')} {what})".rstrip())
