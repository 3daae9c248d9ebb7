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

    fault: dict[str, Any] = {"name": name or fault_type.replace(".", "-"), "type": fault_type,
                             "target": target, "with": parameters or {}}
    if duration is not None:
        fault["duration"] = f"{duration}s" if isinstance(duration, int | float) else duration
    experiment = _experiment({"title": f"chaos.ctk.actions: {fault['name']}",
                              "faults": [fault],
                              "limits": {"max_targets": max_targets, "max_duration": "24h"}})
    return KEEPER.hold(experiment).describe()


def suspend_process(duration: float | str, name: str | None = None, pid: int | None = None,
                    cmdline: str | None = None, pidfile: str | None = None,
                    user: str | None = None, count: int | None = None,
                    children: bool = False) -> dict[str, Any]:
    """Freeze the selected processes (SIGSTOP) for `duration`, then resume them."""
    return inject("process.suspend", _process(name, pid, cmdline, pidfile, user, count),
                  {"children": children}, duration)


def kill_process(signal: str = "KILL", name: str | None = None, pid: int | None = None,
                 cmdline: str | None = None, pidfile: str | None = None,
                 user: str | None = None, count: int | None = None) -> dict[str, Any]:
    """Send a signal (KILL by default) to the selected processes."""
    return inject("process.kill", _process(name, pid, cmdline, pidfile, user, count),
                  {"signal": signal})


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


def _process(name: str | None, pid: int | None, cmdline: str | None, pidfile: str | None,
             user: str | None, count: int | None) -> dict[str, Any]:
    selector = {k: v for k, v in {"name": name, "pid": pid, "cmdline": cmdline,
                                  "pidfile": pidfile, "user": user}.items() if v is not None}
    target: dict[str, Any] = {"process": selector}
    if count is not None:
        target["count"] = count
    return target


def _experiment(document: dict[str, Any]) -> Any:
    """Through the native loader, so input is checked (and refused) exactly like a file's."""
    import yaml

    from chaos.model.loader import load_text
    from chaos.model.source import SourceText
    from chaos.runner.load import vocabulary

    text = yaml.safe_dump(document, sort_keys=False)
    try:
        return load_text(SourceText("<chaos.ctk.actions>", text), vocabulary(), {})
    except ExperimentInvalid as exc:
        details = "; ".join(f"{p.path}: {p.message}" if p.path else p.message
                            for p in exc.problems)
        raise ChaosError(f"invalid fault: {details}") from None
