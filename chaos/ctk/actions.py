"""Our faults as Chaos Toolkit python activities, with our safety under any runner.

In a Chaos Toolkit experiment (run by `chaos run` or by Chaos Toolkit's own `chaos run`):

    "method": [{"type": "action", "name": "freeze-api",
                "provider": {"type": "python", "module": "chaos.ctk.actions",
                             "func": "suspend_process",
                             "arguments": {"name": "api", "duration": 30}}}],
    "rollbacks": [{"type": "action", "name": "unfreeze",
                   "provider": {"type": "python", "module": "chaos.ctk.actions",
                                "func": "revert"}}]

Each call validates its input like a native file, writes the injection to our ledger before
touching anything, starts a watchdog process for it and returns once the fault is injected. The
fault reverts itself at the end of `duration`, at `revert()`, when the experiment's process
exits, and - through the watchdog - when that process is killed. `chaos status`, `chaos stop`
and `chaos recover` see it like any other injection.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

from chaos.errors import ChaosError, ExperimentInvalid

__all__ = ["inject", "kill_process", "revert", "suspend_process"]


def inject(fault_type: str, target: dict[str, Any], parameters: dict[str, Any] | None = None,
           duration: float | str | None = None, name: str | None = None,
           max_targets: int = 5) -> dict[str, Any]:
    """Inject one fault of our catalogue (`chaos faults`) and hold it for `duration`.

    `target` is a native target (`{"process": {"name": "api"}, "count": 1}`, `{"proxy":
    {...}}`, ...), `parameters` its `with:` block, `duration` seconds or a duration like "30s"
    (instant faults such as process.kill take none). Returns the run id and the injections.
    """
    from chaos.ctk.keeper import KEEPER

    experiment = _experiment(_document(fault_type, target, parameters, duration, name,
                                       max_targets))
    return KEEPER.hold(experiment).describe()


def suspend_process(duration: float | str, name: str | None = None, pid: int | None = None,
                    cmdline: str | None = None, pidfile: str | None = None,
                    user: str | None = None, count: int | None = None,
                    children: bool = False) -> dict[str, Any]:
    """Freeze the selected processes (SIGSTOP) for `duration`, then resume them."""
    return inject(**_PLANS["suspend_process"](locals()))


def kill_process(signal: str = "KILL", name: str | None = None, pid: int | None = None,
                 cmdline: str | None = None, pidfile: str | None = None,
                 user: str | None = None, count: int | None = None) -> dict[str, Any]:
    """Send a signal (KILL by default) to the selected processes."""
    return inject(**_PLANS["kill_process"](locals()))


def revert(run: str | None = None) -> dict[str, Any]:
    """Rollback: revert the faults of one run (the `run` an action returned), or all faults this
    process still holds. Reverting what is already reverted does nothing."""
    from chaos.ctk.keeper import KEEPER

    if run is not None:
        held = KEEPER.find(run)
        if held is None:
            raise ChaosError(f"no fault held by this process has run id {run!r}",
                             hint="`chaos status` lists injections; `chaos stop RUN` ends them")
        runs = [held]
        KEEPER.stop(held)
    else:
        runs = KEEPER.stop_all()
    return {"reverted": [h.describe() for h in runs]}


SELECTORS = ("name", "pid", "cmdline", "pidfile", "user")

# each injecting function's arguments -> inject's; `check` builds the fault the same way
_PLANS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "inject": lambda a: a,
    "suspend_process": lambda a: {"fault_type": "process.suspend", "target": _process(a),
                                  "parameters": {"children": a["children"]},
                                  "duration": a["duration"]},
    "kill_process": lambda a: {"fault_type": "process.kill", "target": _process(a),
                               "parameters": {"signal": a["signal"]}},
}


def _process(arguments: dict[str, Any]) -> dict[str, Any]:
    target: dict[str, Any] = {"process": {k: arguments[k] for k in SELECTORS
                                          if arguments.get(k) is not None}}
    if arguments.get("count") is not None:
        target["count"] = arguments["count"]
    return target


def _document(fault_type: str, target: dict[str, Any], parameters: dict[str, Any] | None = None,
              duration: float | str | None = None, name: str | None = None,
              max_targets: int = 5) -> dict[str, Any]:
    """The native experiment one injecting call runs."""
    fault: dict[str, Any] = {"name": name or str(fault_type).replace(".", "-"),
                             "type": fault_type, "target": target, "with": parameters or {}}
    if duration is not None:
        fault["duration"] = _seconds(duration)
    return {"title": f"chaos.ctk.actions: {fault['name']}", "faults": [fault],
            "limits": {"max_targets": max_targets, "max_duration": "24h"}}


def _seconds(duration: Any) -> Any:
    """Seconds as a number or as text: Chaos Toolkit's `--var dur=30` and `${dur}` from the
    environment give "30"; a duration with a unit ("30s") or anything else is the loader's."""
    if isinstance(duration, bool):
        return duration
    if isinstance(duration, int | float):
        return f"{duration}s"
    if isinstance(duration, str):
        with contextlib.suppress(ValueError):
            seconds = float(duration)
            if math.isfinite(seconds):
                return f"{int(seconds) if seconds.is_integer() else seconds}s"
    return duration


def check(func: str, arguments: dict[str, Any]) -> list[tuple[str, str]]:
    """(argument path, problem) of a call with literal arguments, checked as the call would
    check them, without injecting anything: `chaos validate` refuses a bad fault up front."""
    import inspect

    if func not in _PLANS:
        return []
    try:
        bound = inspect.signature(globals()[func]).bind(**arguments)
    except TypeError as exc:
        return [("", str(exc))]
    bound.apply_defaults()
    document = _document(**_PLANS[func](dict(bound.arguments)))
    try:
        _load(document)
    except ExperimentInvalid as exc:
        return [(_argument(func, p.path), p.message) for p in exc.problems]
    return []


def _argument(func: str, path: str) -> str:
    """A native fault's field -> the argument it came from (`faults[0].with.signal` ->
    `signal`); "" when it is the call as a whole."""
    parts = path.removeprefix("faults[0]").lstrip(".").replace("[", ".[").split(".")
    head, rest = parts[0], [p for p in parts[1:] if p]
    if head == "type":
        return "fault_type"
    if head in ("duration", "name"):
        return head
    if path.startswith("limits"):
        return "max_targets" if func == "inject" else ""
    if func == "inject":
        inner = {"target": "target", "with": "parameters"}.get(head)
        return ".".join([inner, *rest]).replace(".[", "[") if inner else ""
    if head == "with" and rest:
        return rest[0]
    if head == "target" and rest:
        return rest[-1] if rest[0] == "process" and len(rest) > 1 else rest[0]
    return ""


def _experiment(document: dict[str, Any]) -> Any:
    """Through the native loader, so input is checked (and refused) exactly like a file's."""
    try:
        return _load(document)
    except ExperimentInvalid as exc:
        details = "; ".join(f"{p.path}: {p.message}" if p.path else p.message
                            for p in exc.problems)
        raise ChaosError(f"invalid fault: {details}") from None


def _load(document: dict[str, Any]) -> Any:
    import yaml

    from chaos.model.loader import load_text
    from chaos.model.source import SourceText
    from chaos.ctk.keeper import KEEPER
    from chaos.runner.load import vocabulary

    text = yaml.safe_dump(document, sort_keys=False)
    return load_text(SourceText("<chaos.ctk.actions>", text),
                     vocabulary(KEEPER.faults, KEEPER.probes), {})
