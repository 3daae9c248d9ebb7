"""Which Chaos Toolkit method activities are one of our faults, and which fault.

Recognised: calls of chaos.ctk.actions (our faults already), process-kill style process actions
(`pkill`, `killall`, `kill`), and chaostoolkit-kubernetes pod termination, deployment scaling,
node cordon and drain. Each mapping returns a native fault (type, target, with, duration) or
raises Unconvertible saying why not. `probe_of` does the same for chaostoolkit-kubernetes
hypothesis probes whose meaning ours keep: minimum pod counts and deployment availability.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from typing import Any

HOLD = "60s"  # Chaos Toolkit holds a scale-down or cordon until its rollback; ours need a duration


class Unconvertible(Exception):
    """Why one activity has no native equivalent."""


def fault_of(activity: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    if activity.get("ref"):
        raise Unconvertible(f"a repeat of {activity['ref']!r}: ours run each fault once "
                            "(give it a duration, or repeat it under another name)")
    if activity.get("type") == "probe":
        raise Unconvertible("probes in the method are not part of our format; put checks under "
                            "hypothesis.during instead")
    provider = activity.get("provider") or {}
    kind = provider.get("type")
    args = provider.get("arguments") or {}
    if kind == "process":
        return _kill(str(provider.get("path")), args, notes)
    if kind == "python" and isinstance(args, Mapping):
        module, func = provider.get("module", ""), provider.get("func", "")
        if module == "chaos.ctk.actions":
            return _ours(func, args)
        if module.startswith("chaosk8s."):
            return _kubernetes(func, args, notes)
        raise Unconvertible(f"{module}.{func} has no native equivalent (see `chaos faults`)")
    raise Unconvertible(f"a {kind} action has no native equivalent (see `chaos faults`)")


def _ours(func: str, args: Mapping[str, Any]) -> dict[str, Any]:
    duration = args.get("duration")
    timing = {"duration": f"{duration}s" if isinstance(duration, int | float) else duration} \
        if duration is not None else {}
    selector = {k: args[k] for k in ("name", "pid", "cmdline", "pidfile", "user") if k in args}
    count = {"count": args["count"]} if "count" in args else {}
    if func == "inject":
        return {"type": args.get("fault_type"), "target": args.get("target"),
                **({"with": args["parameters"]} if args.get("parameters") else {}), **timing}
    if func == "suspend_process":
        return {"type": "process.suspend", "target": {"process": selector, **count},
                **({"with": {"children": args["children"]}} if "children" in args else {}),
                **timing}
    if func == "kill_process":
        return {"type": "process.kill", "target": {"process": selector, **count},
                "with": {"signal": args.get("signal", "KILL")}}
    raise Unconvertible(f"chaos.ctk.actions.{func} is not a fault (our faults revert "
                        "themselves)")


def _signal(flag: str) -> str | None:
    name = flag.lstrip("-").upper().removeprefix("SIG")
    if name.isdigit():
        import signal

        try:
            return signal.Signals(int(name)).name.removeprefix("SIG")
        except ValueError:
            return None
    return name or None


def _kill(path: str, arguments: Any, notes: list[str]) -> dict[str, Any]:
    tool = os.path.basename(path)
    if tool not in ("pkill", "killall", "kill"):
        raise Unconvertible(f"the process action `{tool}` has no native equivalent")
    argv = shlex.split(arguments) if isinstance(arguments, str) else [str(a) for a in arguments]
    sig, full, rest = "TERM", False, []
    words = iter(argv)
    for word in words:
        if word in ("-s", "--signal"):
            sig = _signal(next(words, "")) or sig
        elif word == "-f":
            full = True
        elif word.startswith("-") and len(word) > 1:
            found = _signal(word)
            if found is None:
                raise Unconvertible(f"`{tool}` option {word} is not understood")
            sig = found
        else:
            rest.append(word)
    if len(rest) != 1:
        raise Unconvertible(f"`{tool}` needs exactly one target here, got {rest!r}")
    target = rest[0]
    if tool == "kill":
        if not target.isdigit():
            raise Unconvertible(f"`kill {target}`: only a literal pid converts")
        selector: dict[str, Any] = {"pid": int(target)}
    else:
        selector = {"cmdline": target} if full else {"name": target}
    if sig in ("STOP", "TSTP"):
        notes.append(f"`{tool} -{sig}` {target}: process.suspend held for {HOLD} (Chaos "
                     "Toolkit leaves it stopped until a rollback sends CONT); adjust `duration`")
        return {"type": "process.suspend", "target": {"process": selector}, "duration": HOLD}
    if sig == "CONT":
        raise Unconvertible(f"`{tool} -CONT` resumes processes: our process.suspend resumes "
                            "them itself")
    return {"type": "process.kill", "target": {"process": selector}, "with": {"signal": sig}}


def _count(value: Any, name: str) -> int | str:
    """A number argument: kept as `${var}` when it is one (configuration), else an int."""
    if isinstance(value, str) and re.fullmatch(r"\$\{[^}]+\}", value.strip()):
        return value.strip()
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Unconvertible(f"{name} {value!r} is not a whole number") from None


def _labels(selector: Any) -> dict[str, str]:
    labels = {}
    for part in str(selector or "").split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key or any(c in part for c in "!()") or value.startswith("="):
            raise Unconvertible(f"label selector {selector!r}: only key=value pairs convert")
        labels[key.strip()] = value.strip()
    return labels


def _kubernetes(name: str, args: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    ns = args.get("ns", "default")
    if name == "terminate_pods":
        if args.get("name_pattern") or args.get("mode", "fixed") != "fixed":
            raise Unconvertible("name_pattern and percentage mode have no native equivalent")
        target: dict[str, Any] = {"pods": {"namespace": ns,
                                           "labels": _labels(args.get("label_selector"))}}
        if not args.get("all"):
            target["count"] = _count(args.get("qty", 1), "qty")
        grace = args.get("grace_period", -1)
        with_: dict[str, Any] = {"grace_period": f"{grace}s"} if grace >= 0 else {}
        if grace == 0:
            # chaosk8s sends gracePeriodSeconds=0 as it is: the API server then removes the pod
            # object at once (a force delete). Ours sends 0 as 1 s unless `force: true`, as
            # kubectl does; keep Chaos Toolkit's meaning, and say what it means.
            with_["force"] = True
            notes.append("terminate_pods grace_period=0: a force delete (the pod object goes at "
                         "once while its containers may still run); converted with `force: "
                         "true` — remove it to get kubectl's 1 s grace period")
        return {"type": "pod.delete", "target": target, **({"with": with_} if with_ else {})}
    if name == "scale_deployment":
        notes.append(f"scale_deployment {args.get('name')}: held for {HOLD} (Chaos Toolkit "
                     "holds it until a rollback scales it back); adjust `duration`")
        return {"type": "workload.scale_down",
                "target": {"deployment": {"namespace": ns, "name": args.get("name")}},
                "with": {"replicas": _count(args.get("replicas", 0), "replicas")}, "duration": HOLD}
    if name in ("cordon_node", "drain_nodes"):
        node = {"name": args["name"]} if args.get("name") else {
            "labels": _labels(args.get("label_selector"))}
        notes.append(f"{name}: held for {HOLD} (Chaos Toolkit holds it until a "
                     "rollback uncordons); adjust `duration`")
        return {"type": "node.cordon" if "cordon" in name else "node.drain",
                "target": {"node": node}, "duration": HOLD}
    raise Unconvertible(f"chaostoolkit-kubernetes {name} has no native equivalent (see "
                        "`chaos faults`)")


def probe_of(provider: Mapping[str, Any], tolerance: Any, notes: list[str]) -> dict[str, Any]:
    """A chaostoolkit-kubernetes python probe -> our `pods` or `deployment` probe."""
    module, name = str(provider.get("module", "")), str(provider.get("func", ""))
    args = provider.get("arguments") or {}
    if not module.startswith("chaosk8s.") or not isinstance(args, Mapping):
        raise Unconvertible(f"the python probe {module}.{name} has no native equivalent (ours: "
                            "http, tcp, exec, process, pods, deployment)")
    if tolerance is not True:
        raise Unconvertible(f"{name} with tolerance {tolerance!r}: only `true` converts (ours "
                            "answer ok or not)")
    if args.get("label_selector") and name.startswith("deployment_"):
        raise Unconvertible(f"{name} with a label_selector: ours probe one Deployment by name")
    ns = args.get("ns", "default")
    if name == "count_min_pods":
        if args.get("phase", "Running") != "Running":
            raise Unconvertible(f"count_min_pods in phase {args['phase']!r}: ours count Ready "
                                "pods")
        notes.append(f"count_min_pods {args.get('label_selector')}: ours count Ready pods, "
                     "not pods in phase Running (a Running pod failing its readiness probe "
                     "does not count)")
        return {"pods": {"namespace": ns, "labels": _labels(args.get("label_selector")),
                         "min_ready": _count(args.get("min_count", 2), "min_count")}}
    if name in ("deployment_available_and_healthy", "deployment_fully_available"):
        if name == "deployment_fully_available":
            wait = args.get("timeout", 30)
            notes.append(f"deployment_fully_available {args.get('name')}: Chaos Toolkit waits "
                         f"up to {wait}s for every replica; ours judge each sample, so allow "
                         f"the wait with `after: {{recover_within: {wait}s}}`")
        return {"deployment": {"namespace": ns, "name": args.get("name")}}
    if name == "deployment_partially_available":
        return {"deployment": {"namespace": ns, "name": args.get("name"), "min_available": 1}}
    if name == "pods_in_phase":
        raise Unconvertible("pods_in_phase checks that every matching pod is in a phase; ours "
                            "count Ready pods against a minimum: write `pods: {labels: ..., "
                            "min_ready: N}` with the N you expect")
    raise Unconvertible(f"chaostoolkit-kubernetes {name} has no native probe (ours: pods, "
                        "deployment)")
