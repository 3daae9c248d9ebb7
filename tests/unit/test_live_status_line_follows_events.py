"""The status line (chaos.cli.live) from events alone, on a manual clock: phase and time left,
live availability/p95, guardrail headroom, held faults; the proxy's line and byte counts."""

from __future__ import annotations

from chaos.cli.live import Progress, fit, format_bytes, gameday_line, proxy_line
from chaos.model.loader import load_text
from chaos.model.source import SourceText
from chaos.runner.events import Event
from chaos.runner.load import vocabulary

EXPERIMENT = """title: status line
hypothesis:
  traffic: {http: {url: "http://127.0.0.1:1/", rate: 10/s}}
  checks: [availability >= 99%]
  before: {window: 10s}
  during: {abort: [availability < 90%, latency.p95 > 500ms], window: 2s}
  after: {settle: 2s, window: 5s}
faults:
  - type: process.suspend
    target: {process: {pid: 4242}}
    start: 5s
    duration: 20s
"""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def event(name: str, **data: object) -> Event:
    return Event(name, 0.0, 0.0, dict(data))


def progress() -> tuple[Progress, Clock]:
    clock = Clock()
    experiment = load_text(SourceText("status.yaml", EXPERIMENT), vocabulary(), {})
    return Progress(experiment, clock=clock), clock


def test_phase_and_time_left_follow_the_clock() -> None:
    p, clock = progress()
    assert p.render() == ""
    p(event("phase.started", phase="before"))
    clock.now += 3
    assert p.render() == ">> before  7s left"
    p(event("phase.started", phase="during"))
    clock.now += 4
    assert p.render().startswith(">> during  21s left")  # the last fault ends at 25s
    p(event("phase.started", phase="after"))
    assert p.render() == ">> after  7s left"  # settle + window


def test_live_figures_headroom_and_held_faults() -> None:
    p, clock = progress()
    p(event("phase.started", phase="during"))
    for requests, errors, p95 in ((10, 0, 0.05), (10, 1, 0.08), (10, 0, 0.30)):
        p(event("traffic.second", t=0, requests=requests, errors=errors, p95=p95))
    p(event("fault.injected", injection="r.0.0", type="process.suspend", target="pid 4242",
            duration=20.0))
    clock.now += 5
    line = p.render(400)
    assert "1 fault active, next revert in 15s" in line
    assert "last 5s: availability 96.7%, p95 300ms" in line
    # the guardrails look at their own 2 s window: 19 of 20 good, worst p95 300 ms
    assert "abort if availability < 90%: 5.0 pts to spare" in line
    assert "abort if latency.p95 > 500ms: 200ms to spare" in line
    p(event("traffic.second", t=3, requests=10, errors=9, p95=0.9))
    assert "abort if latency.p95 > 500ms: BREACHED" in p.render(400)
    p(event("fault.reverted", injection="r.0.0"))
    assert "fault active" not in p.render(400)


def test_the_line_is_cut_to_the_width_never_wrapped() -> None:
    assert fit("x" * 50, 20) == "x" * 16 + "..."
    assert fit("short", 20) == "short"


def test_byte_counts_read_at_a_glance() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1024, 3 * 1024 * 1024, 5 * 1024 ** 3)] == [
        "0 B", "1023 B", "1.0 KiB", "3.0 MiB", "5.0 GiB"]


def test_proxy_line_shows_each_fault_with_parameters_and_time_left() -> None:
    snap = {"open_connections": 2, "accepted": 7, "bytes": {"upstream": 2048, "downstream": 10},
            "toxics": [{"kind": "latency", "direction": "both", "toxicity": 0.5,
                        "params": {"delay": 0.2, "jitter": 0.02}, "expires": 190.0},
                       {"kind": "bandwidth", "direction": "downstream", "toxicity": 1.0,
                        "params": {"rate": 1024.0}, "expires": None}]}
    assert proxy_line(snap, None, 100.0) == (
        "connections 2 open, 7 accepted | up 2.0 KiB, down 10 B | "
        "latency(delay 200ms, jitter 20ms; both, 50% of connections) 90s left | "
        "bandwidth(rate 1.0 KiB/s; downstream) until Ctrl-C")


def test_gameday_line_counts_running_done_and_waiting() -> None:
    class Ref:
        shown = "a.yaml"

    class Slot:
        def __init__(self, index: int, status: str, verdict: str | None = None) -> None:
            self.index, self.status, self.ref = index, status, Ref()
            self.started = 40.0 if status != "pending" else None
            self.summary = {"verdict": verdict} if verdict else {}
            self.exit_code = 0

    slots = [Slot(1, "done", "held"), Slot(2, "running"), Slot(3, "pending")]
    assert gameday_line(slots, 0.0, 72.0) == (
        "game day 72s | running [2/3] a.yaml 32s | done: 1 held | 1 to go")
