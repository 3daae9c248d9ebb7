"""The status line of a run on a terminal: where it is and how close it is to the edge.

`during  12s left | 1 fault active, next revert in 12s | last 5s: availability 99.8%, p95 42ms |
abort if availability < 90%: 9.8 pts to spare` - redrawn in place by the live view
(chaos.cli.view) several times a second, from events only (the engine never formats output).
Fitted to the terminal's width, so a narrow window never wraps it into stale half-lines.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from chaos.runner.events import Event
from chaos.units import format_duration

RECENT = 5  # seconds of traffic the live figures cover (guardrails: their own abort window)


class Progress:
    """Follows a run's events; `render()` is the status line for now."""

    def __init__(self, experiment: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.experiment = experiment
        self.clock = clock
        self.phase = ""
        self.phase_started = 0.0
        self.phase_length: float | None = None
        self.seconds: deque[tuple[int, int, float | None]] = deque(maxlen=120)
        self.held: dict[str, tuple[str, float]] = {}  # injection -> (what, monotonic end)
        self.finished = False

    def __call__(self, event: Event) -> None:
        d, now = event.data, self.clock()
        if event.name == "phase.started":
            self.phase, self.phase_started = d["phase"], now
            self.phase_length = self._length(d["phase"])
        elif event.name == "traffic.second":
            self.seconds.append((int(d["requests"]), int(d["errors"]), d.get("p95")))
        elif event.name == "fault.injected":
            self.held[d["injection"]] = (f"{d['type']} on {d['target']}",
                                         now + float(d["duration"] or 0.0))
        elif event.name in ("fault.reverted", "fault.revert_failed"):
            self.held.pop(d["injection"], None)
        elif event.name == "run.finished":
            self.finished = True

    def _length(self, phase: str) -> float | None:
        hyp = getattr(self.experiment, "hypothesis", None)
        if phase == "during":
            end = getattr(self.experiment, "faults_end", None)  # Chaos Toolkit: no timeline
            return None if end is None else float(end)
        if hyp is None:
            return None
        if phase == "before":
            return float(hyp.before.window)
        if phase == "after":
            return float(hyp.after.settle + hyp.after.window)
        return None

    def recent(self, seconds: float) -> tuple[int, int, float | None]:
        """Requests, errors and the highest per-second p95 over the last `seconds`."""
        rows = list(self.seconds)[-max(1, int(round(seconds))):]
        p95s = [p for _, _, p in rows if p is not None]
        return (sum(r for r, _, _ in rows), sum(e for _, e, _ in rows),
                max(p95s) if p95s else None)

    def headroom(self) -> list[str]:
        """How far each guardrail is from aborting the run, from the recent traffic."""
        hyp = getattr(self.experiment, "hypothesis", None)
        if hyp is None or self.phase != "during" or not self.seconds:
            return []
        out = []
        for spec in hyp.during.abort:
            check = spec.parsed
            stat = getattr(check, "stat", "")
            requests, errors, p95 = self.recent(hyp.during.abort_window)
            if stat in ("availability", "error_rate") and requests:
                value = 1 - errors / requests if stat == "availability" else errors / requests
                spare = abs(value - check.threshold) * 100
                out.append(f"abort if {spec.text}: "
                           + (f"{spare:.1f} pts to spare" if not _breached(check, value)
                              else "BREACHED"))
            elif stat == "p95" and p95 is not None:
                spare_s = abs(check.threshold - p95)
                out.append(f"abort if {spec.text}: " + (
                    f"{format_duration(spare_s)} to spare" if not _breached(check, p95)
                    else "BREACHED"))
        return out

    def render(self, width: int = 120) -> str:
        now = self.clock()
        parts = []
        if self.phase:
            left = ""
            if self.phase_length is not None:
                remaining = max(0.0, self.phase_started + self.phase_length - now)
                left = f"  {format_duration(round(remaining))} left"
            parts.append(f"{self.phase}{left}")
        if self.held:
            _, until = min(self.held.values(), key=lambda h: h[1])
            count = len(self.held)
            parts.append(f"{count} fault{'' if count == 1 else 's'} active, next revert in "
                         f"{format_duration(round(max(0.0, until - now)))}")
        if self.seconds:
            requests, errors, p95 = self.recent(RECENT)
            availability = f"{100 * (1 - errors / requests):.1f}%" if requests else "n/a"
            latency = format_duration(p95) if p95 is not None else "n/a"
            parts.append(f"last {RECENT}s: availability {availability}, p95 {latency}")
        parts += self.headroom()
        return fit(">> " + " | ".join(parts), width) if parts else ""


def _breached(check: Any, value: float) -> bool:
    """A guardrail's condition holds (it is written as the abort condition: `< 90%`)."""
    return bool(check.holds(value))


def fit(text: str, width: int) -> str:
    """One screen line: cut with an ellipsis, never wrapped (a wrapped line cannot be redrawn)."""
    width = max(10, width - 1)  # the last column makes some terminals wrap early
    return text if len(text) <= width else text[:width - 3] + "..."


def format_bytes(count: float) -> str:
    """1.2 MiB, not 1258291 B: byte counts a person reads at a glance."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # not reached


# a toxic's parameters, as a person wrote them (they are stored as seconds and bytes)
_SECONDS = ("delay", "jitter", "after")


def _toxic_param(name: str, value: float) -> str:
    if name in _SECONDS:
        return f"{name} {format_duration(value)}"
    if name == "rate":
        return f"rate {format_bytes(value)}/s"
    if name in ("bytes", "size", "variation"):
        return f"{name} {format_bytes(value)}"
    return f"{name} {value:g}"


def proxy_line(snap: dict[str, Any], until: float | None, now: float) -> str:
    """The fault proxy's live line: traffic, then each fault with its parameters and time left."""
    parts = [f"connections {snap['open_connections']} open, {snap['accepted']} accepted",
             f"up {format_bytes(snap['bytes']['upstream'])}, "
             f"down {format_bytes(snap['bytes']['downstream'])}"]
    if snap.get("protocol") == "http":
        parts.append(f"requests {snap['requests']}, faulted {snap['faulted']}, "
                     f"errors {snap['http_errors']}")
    for toxic in snap["toxics"]:
        params = ", ".join(_toxic_param(k, v) for k, v in toxic["params"].items())
        ends = toxic.get("expires") or until
        left = (f"{format_duration(round(max(0.0, ends - now)))} left" if ends
                else "until Ctrl-C")
        share = f", {toxic['toxicity'] * 100:g}% of connections" if toxic["toxicity"] < 1 else ""
        parts.append(f"{toxic['kind']}({params}{'; ' if params else ''}{toxic['direction']}"
                     f"{share}) {left}")
    if not snap["toxics"]:
        parts.append("no faults")
    return " | ".join(parts)


def gameday_line(slots: list[Any], started: float, now: float) -> str:
    """A game day's status line: which experiments run, for how long, and what the done ones
    gave (slots: chaos.gameday.run.Slot)."""
    total = len(slots)
    parts = [f"game day {format_duration(round(max(0.0, now - started)))}"]
    for slot in slots:
        if slot.status == "running" and slot.started is not None:
            title = slot.summary.get("title") or slot.ref.shown
            parts.append(f"running [{slot.index}/{total}] {title} "
                         f"{format_duration(round(max(0.0, now - slot.started)))}")
    done: dict[str, int] = {}
    for slot in slots:
        if slot.status == "done":
            word = str(slot.summary.get("verdict") or f"exit {slot.exit_code}")
            done[word] = done.get(word, 0) + 1
    if done:
        parts.append("done: " + ", ".join(f"{n} {word}" for word, n in done.items()))
    waiting = sum(1 for slot in slots if slot.status == "pending")
    if waiting:
        parts.append(f"{waiting} to go")
    return " | ".join(parts)
