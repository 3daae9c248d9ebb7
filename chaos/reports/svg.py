"""Line charts as inline SVG: no plotting library, no script, no network, prints anywhere.

Series are per-second buckets, so each value is drawn as a step: a horizontal segment over the
second it summarises, [t, t + 1). A point at `t` would put a bucket's value at its start and
draw slopes between buckets, so a drop measured in the second after an injection would seem to
begin a second before it. Seconds without a value (no successful request: no latency) break the
line rather than being bridged.

A long run would give thousands of steps (and megabytes of SVG) to a plot a few hundred pixels
wide, so a chart whose longest series has more than MAX_STEPS seconds merges consecutive seconds
into buckets of equal length (analysis.worst_per_bucket) and draws each bucket at its WORST
second: the lowest availability, the highest latency. An outage or a spike is never averaged
away, and the chart says so ("each step is 10s ..."). Fault windows, phases and guardrail
breaches keep their exact times.

Every drawn series also carries its data (`data-values="t,v;t,v"`, `data-step` seconds) and the
plot carries its axis ranges (`data-x-min` ... `data-plot`), so tests and other tools can check
a chart against the journal it was drawn from, pixel by pixel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape
from typing import Literal

from chaos.reports.analysis import Line, Threshold, Window, bucket_seconds, worst_per_bucket
from chaos.reports.timeline import Mark
from chaos.units import format_duration

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2")
DASHES = ("", "7 4", "2 3", "10 3 2 3")  # lines that coincide stay distinguishable
FAULT_FILL, FAULT_EDGE, BREACH = "#f4a261", "#e76f51", "#b00020"
ALERT = "#6a1b9a"  # where an alert first fired (detection)
THRESHOLD = "#2e7d32"  # the SLO line a check compares to
WIDTH, HEIGHT = 720, 250
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 40, 40
STEP = 1.0  # seconds per bucket of the journal's series
MAX_STEPS = 600  # per series: about a pixel each (the plot is 644 px wide, ~900 on screen)


def nice_ceiling(value: float) -> float:
    """1, 2, 2.5 or 5 times a power of ten, at least `value` (axis tops people can read)."""
    if value <= 0:
        return 1.0
    power = float(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def merge_identical(lines: Sequence[Line]) -> list[Line]:
    """Series with the same values become one, named `home p95 = max`: two lines drawn on top
    of each other would hide one of them (with a few samples a second, p95 is the max)."""
    merged: list[Line] = []
    for line in lines:
        same = next((i for i, m in enumerate(merged) if m.points == line.points), None)
        if same is None:
            merged.append(line)
            continue
        head, _, _ = merged[same].name.rpartition(" ")
        prefix, _, stat = line.name.rpartition(" ")
        name = f"{merged[same].name} = {stat}" if head and head == prefix else \
            f"{merged[same].name} = {line.name}"
        merged[same] = Line(name, line.points)
    return merged


def chart(title: str, lines: Sequence[Line], *, x_max: float, y_min: float = 0.0,
          y_max: float | None = None, y_label: Callable[[float], str] = str,
          thresholds: Sequence[Threshold] = (), no_data: Sequence[Window] = (),
          faults: Sequence[Window] = (), breaches: Sequence[tuple[float, str]] = (),
          phases: Sequence[Window] = (), scale: float = 1.0,
          worst: Literal["lowest", "highest"] = "highest",
          alerts: Sequence[tuple[float, str]] = (), resolution: float = STEP) -> str:
    """`alerts`: (t, name) where an alert first fired, marked like breaches.
    `scale` multiplies values for display (1000: seconds shown as ms); data stays unscaled.
    `worst`: which value of a bucket is drawn when seconds are merged (availability: lowest).
    `resolution`: seconds per point (a short run's ticks: 0.1), drawn as they are."""
    x_top = max(x_max, 1.0)
    step = resolution
    if resolution >= STEP and max((len(line.points) for line in lines),
                                  default=0) > MAX_STEPS:
        step = float(bucket_seconds(x_top, MAX_STEPS))
        pick = min if worst == "lowest" else max
        lines = [worst_per_bucket(line, int(step), pick) for line in lines]
    lines = merge_identical(lines)
    data_top = max((v for line in lines for _, v in line.points), default=0.0)
    # a threshold far above the data would flatten it: it is named at the top edge instead
    near = [t.value for t in thresholds if not data_top or t.value <= 3 * data_top]
    top_value = y_max if y_max is not None else nice_ceiling(
        max([data_top, *near], default=0.0) * 1.1)
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(t: float) -> float:
        return round(LEFT + t / x_top * w, 1)

    def py(v: float) -> float:
        return round(TOP + h - (v - y_min) / ((top_value - y_min) or 1.0) * h, 1)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
           f'data-x-min="0" data-x-max="{x_top:g}" data-y-min="{y_min:g}" '
           f'data-y-max="{top_value:g}" data-plot="{LEFT},{TOP},{w},{h}">',
           f"<title>{escape(title)}</title>",
           f'<text x="{LEFT}" y="15" class="chart-title">{escape(title)}</text>']
    if step > STEP:
        out.append(f'<text x="{WIDTH - RIGHT}" y="26" text-anchor="end" class="resolution" '
                   f'data-step="{step:g}" data-worst="{worst}">each step is '
                   f'{format_duration(step)} and shows its worst second ({worst} value)</text>')
    out += _phases(phases, px, TOP, h)
    for fault in faults:
        x0, x1 = px(fault.start), px(fault.end)
        instant = x1 - x0 < 3
        out.append(f'<rect class="fault" data-fault="{escape(fault.name)}" '
                   f'data-start="{fault.start:g}" data-end="{fault.end:g}" x="{x0}" y="{TOP}" '
                   f'width="{max(x1 - x0, 2.0):.1f}" height="{h}" '
                   f'fill="{FAULT_EDGE if instant else FAULT_FILL}" '
                   f'fill-opacity="{0.9 if instant else 0.28}"><title>fault {escape(fault.name)}'
                   f': {fault.start:.1f}s-{fault.end:.1f}s</title></rect>'
                   f'<text x="{x0 + 4}" y="{TOP + 12}" class="fault-label">'
                   f'{escape(fault.name)}</text>')
    out += _axes(x_top, y_min, top_value, y_label, scale, px, py)
    legend: list[tuple[str, str]] = []
    drawn = []
    for i, line in enumerate(lines):
        colour, dash = PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)]
        style = f'stroke="{colour}" stroke-width="2"' + (
            f' stroke-dasharray="{dash}"' if dash else "")
        values = ";".join(f"{t:g},{v:g}" for t, v in line.points)
        drawn.append(f'<path class="series" data-series="{escape(line.name)}" '
                     f'data-step="{step:g}" data-values="{values}" '
                     f'd="{_steps(line.points, px, py, step, x_top, step > resolution)}" '
                     f'fill="none" {style}/>')
        legend.append((line.name, f'<line x1="0" x2="18" y1="0" y2="0" {style}/>'))
    out += _no_data(no_data, px, h)
    out += reversed(drawn)  # the first series (p50, the main probe) on top
    out += _thresholds(thresholds, py, scale, y_label, y_min, top_value)
    if thresholds:
        legend.append(("SLO threshold", f'<line x1="0" x2="18" y1="0" y2="0" '
                                        f'stroke="{THRESHOLD}" stroke-width="1.5" '
                                        f'stroke-dasharray="6 3"/>'))
    if faults:
        legend.append(("fault", f'<rect x="0" y="-5" width="18" height="9" fill="{FAULT_FILL}" '
                                f'fill-opacity="0.45"/>'))
    for t, check in breaches:
        x = px(t)
        out.append(f'<g class="breach" data-t="{t:g}"><line x1="{x}" x2="{x}" y1="{TOP}" '
                   f'y2="{TOP + h}" stroke="{BREACH}" stroke-width="2" stroke-dasharray="4 3"/>'
                   f'<path d="M{x - 5},{TOP - 8} L{x + 5},{TOP - 8} L{x},{TOP} Z" '
                   f'fill="{BREACH}"/><title>guardrail breached at {t:.1f}s: {escape(check)}'
                   f'</title></g>')
    for t, name in alerts:
        x = px(t)
        out.append(f'<g class="alert" data-t="{t:g}"><line x1="{x}" x2="{x}" y1="{TOP}" '
                   f'y2="{TOP + h}" stroke="{ALERT}" stroke-width="2"/>'
                   f'<title>alert {escape(name)} fired at {t:.1f}s</title></g>')
    if alerts:
        legend.append(("alert fired", f'<line x1="9" x2="9" y1="-6" y2="6" '
                                       f'stroke="{ALERT}" stroke-width="2"/>'))
    if breaches:
        legend.append(("guardrail breached", f'<line x1="9" x2="9" y1="-6" y2="6" '
                                              f'stroke="{BREACH}" stroke-width="2"/>'))
    if not lines:
        out.append(f'<text x="{LEFT + w / 2}" y="{TOP + h / 2}" text-anchor="middle" '
                   f'class="empty">no measurements</text>')
    out += _legend(legend)
    out.append("</svg>")
    return "\n".join(out)


def capacity_chart(title: str, runs: Sequence[tuple[str, Sequence[tuple[float, float]],
                                                   float | None]], *, x_max: float,
                   y_max: float | None = None, y_label: Callable[[float], str] = str,
                   scale: float = 1.0) -> str:
    """A measure (p99, availability) against the request rate, one line per breaking-point
    search (`runs`: name, (rate, value) per step, the rate it broke at or None), each step a
    dot and each breaking point a dashed vertical line in the search's colour."""
    x_top = nice_ceiling(max(x_max, 1.0))
    data_top = max((v for _, points, _ in runs for _, v in points), default=0.0)
    top_value = y_max if y_max is not None else nice_ceiling(data_top * 1.1)
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(rate: float) -> float:
        return round(LEFT + rate / x_top * w, 1)

    def py(v: float) -> float:
        return round(TOP + h - v / (top_value or 1.0) * h, 1)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart capacity" role="img" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
           f'data-x-min="0" data-x-max="{x_top:g}" data-y-min="0" '
           f'data-y-max="{top_value:g}" data-plot="{LEFT},{TOP},{w},{h}">',
           f"<title>{escape(title)}</title>",
           f'<text x="{LEFT}" y="15" class="chart-title">{escape(title)}</text>']
    out += _axes(x_top, 0.0, top_value, y_label, scale, px, py, x_unit="/s")
    legend: list[tuple[str, str]] = []
    for i, (name, points, broke) in enumerate(runs):
        colour, dash = PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)]
        style = f'stroke="{colour}" stroke-width="2"' + (
            f' stroke-dasharray="{dash}"' if dash else "")
        values = ";".join(f"{r:g},{v:g}" for r, v in points)
        path = " ".join(f"{'L' if j else 'M'}{px(r)},{py(v)}" for j, (r, v) in enumerate(points))
        out.append(f'<g class="search" data-series="{escape(name)}" data-values="{values}">'
                   f'<path d="{path}" fill="none" {style}/>' + "".join(
                       f'<circle cx="{px(r)}" cy="{py(v)}" r="3" fill="{colour}"/>'
                       for r, v in points) + "</g>")
        legend.append((name, f'<line x1="0" x2="18" y1="0" y2="0" {style}/>'))
        if broke is not None:
            x = px(broke)
            out.append(f'<g class="breaking-point" data-series="{escape(name)}" '
                       f'data-rate="{broke:g}"><line x1="{x}" x2="{x}" y1="{TOP}" '
                       f'y2="{TOP + h}" stroke="{colour}" stroke-width="1.5" '
                       f'stroke-dasharray="4 3"/><title>{escape(name)}: broke at '
                       f'{broke:,.0f} req/s</title></g>')
    if not any(points for _, points, _ in runs):
        out.append(f'<text x="{LEFT + w / 2}" y="{TOP + h / 2}" text-anchor="middle" '
                   f'class="empty">no measurements</text>')
    out += _legend(legend)
    out.append("</svg>")
    return "\n".join(out)


def _steps(points: Sequence[tuple[float, float]], px: Callable[[float], float],
           py: Callable[[float], float], step: float, x_top: float, merged: bool) -> str:
    """`M x,y H x` per bucket; `V y H x` when the next bucket follows at once, else a new `M`.
    A merged bucket ends at the plot's edge at the latest (its seconds all lie before it)."""
    parts: list[str] = []
    previous: float | None = None
    for t, v in points:
        end = min(t + step, x_top) if merged else t + step
        if previous is not None and abs(t - previous - step) < 1e-6:
            parts.append(f"V{py(v)} H{px(end)}")
        else:
            parts.append(f"M{px(t)},{py(v)} H{px(end)}")
        previous = t
    return " ".join(parts)


def _thresholds(thresholds: Sequence[Threshold], py: Callable[[float], float], scale: float,
                label: Callable[[float], str], y_min: float, y_top: float) -> list[str]:
    """The value each check compares to, as a dashed line named by the check (the label at
    the right end, above the line, so the series stays readable)."""
    out = []
    above = [t for t in thresholds if t.value > y_top]
    for i, t in enumerate(above):
        out.append(f'<g class="threshold above" data-value="{t.value:g}" '
                   f'data-check="{escape(t.check)}"><text x="{WIDTH - RIGHT - 4}" '
                   f'y="{TOP + 12 + 12 * i}" text-anchor="end" class="threshold-label">'
                   f'↑ {escape(t.check)} (above the chart)</text></g>')
    placed: list[float] = []  # label baselines so far: close lines get labels apart
    for t in sorted(thresholds, key=lambda t: -t.value):
        if not y_min <= t.value <= y_top:
            continue
        y = py(t.value)
        text_y = y - 4
        if any(abs(text_y - p) < 11 for p in placed):
            text_y = y + 12  # below its own line
        while any(abs(text_y - p) < 11 for p in placed):
            text_y += 11
        placed.append(text_y)
        out.append(f'<g class="threshold" data-value="{t.value:g}" '
                   f'data-check="{escape(t.check)}"><line x1="{LEFT}" x2="{WIDTH - RIGHT}" '
                   f'y1="{y}" y2="{y}" stroke="{THRESHOLD}" stroke-width="1.5" '
                   f'stroke-dasharray="6 3"/><text x="{WIDTH - RIGHT - 4}" y="{text_y:.1f}" '
                   f'text-anchor="end" class="threshold-label">{escape(t.check)}</text>'
                   f'<title>SLO threshold: {escape(t.check)} '
                   f'({escape(label(t.value * scale))})</title></g>')
    return out


def _no_data(windows: Sequence[Window], px: Callable[[float], float], h: float) -> list[str]:
    """Seconds with requests but no success: greyed and named, not an unexplained gap (a
    fill, not a pattern: the report references nothing, not even url(#id))."""
    out = []
    for i, w in enumerate(windows):
        x0, x1 = px(w.start), px(w.end)
        out.append(f'<g class="no-data" data-start="{w.start:g}" data-end="{w.end:g}">'
                   f'<rect x="{x0}" y="{TOP}" width="{max(x1 - x0, 2.0):.1f}" height="{h}" '
                   f'fill="#9e9e9e" fill-opacity="0.22"/><title>{escape(w.name)}: {w.start:.0f}s-'
                   f'{w.end:.0f}s</title>' + (
                       f'<text x="{(x0 + x1) / 2:.1f}" y="{TOP + h / 2:.1f}" '
                       f'text-anchor="middle" class="no-data-label">{escape(w.name)}</text>'
                       if x1 - x0 >= 6.2 * len(w.name) or i == 0 else "") + "</g>")
    return out


def _phases(phases: Sequence[Window], px: Callable[[float], float], top: float,
            h: float) -> list[str]:
    """The hypothesis phases (before, during, after) named above the plot, split by dots."""
    out = []
    for i, p in enumerate(phases):
        x0, x1 = px(p.start), px(p.end)
        if i:
            out.append(f'<line class="phase" x1="{x0}" x2="{x0}" y1="{top - 14}" '
                       f'y2="{top + h}" stroke="#888" stroke-dasharray="1 3"/>')
        if x1 - x0 >= 30:
            out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{top - 4}" text-anchor="middle" '
                       f'class="phase-label">{escape(p.name)}</text>')
    return out


def _legend(entries: Sequence[tuple[str, str]]) -> list[str]:
    out, x = [], float(LEFT)
    for name, swatch in entries:
        out.append(f'<g class="legend-entry" transform="translate({x:.0f},{HEIGHT - 9})">'
                   f'{swatch}<text x="24" y="4" class="legend">{escape(name)}</text></g>')
        x += 24 + 6.2 * len(name) + 18
    return out


def _axes(x_top: float, y_min: float, y_top: float, label: Callable[[float], str], scale: float,
          px: Callable[[float], float], py: Callable[[float], float],
          x_unit: str = "s") -> list[str]:
    out = [f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
           f'height="{HEIGHT - TOP - BOTTOM}" fill="none" stroke="#999"/>']
    for i in range(5):
        v = y_min + (y_top - y_min) * i / 4
        y = py(v)
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" stroke="#e5e5e5"/>'
                   f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end" class="tick">'
                   f'{escape(label(v * scale))}</text>')
    return out + _x_ticks(x_top, px, HEIGHT - BOTTOM, x_unit)


def _x_ticks(x_top: float, px: Callable[[float], float], y: float,
             x_unit: str = "s") -> list[str]:
    out = []
    step = nice_ceiling(x_top / 8)
    t = 0.0
    while t <= x_top + 1e-9:
        x = px(t)
        out.append(f'<line x1="{x}" x2="{x}" y1="{y}" y2="{y + 4}" '
                   f'stroke="#999"/><text x="{x}" y="{y + 15}" '
                   f'text-anchor="middle" class="tick">{t:g}{x_unit}</text>')
        t += step
    return out


MARK_COLOURS = {"fault injected": FAULT_EDGE, "first error": BREACH, "alert fired": ALERT,
                "served again": PALETTE[0], "reverted": "#555", "recovered": THRESHOLD}
ROW_HEIGHT = 140
ROW_AXIS = ROW_HEIGHT - 28  # the time axis: the charts' x scale, so marks line up with them
# label baselines, top down: one per kind of mark, so even marks at one instant stay readable
ROW_LEVELS = (30.0, 44.0, 58.0, 72.0, 86.0, 100.0)


def timeline(title: str, marks: Sequence[Mark], *, x_max: float,
             faults: Sequence[Window] = ()) -> str:
    """The incident's marks on one time axis, each labelled with its time since the first
    injection; the axis is the charts' (same x_max, same plot width), so a mark sits above the
    second it happened in on every chart below. Labels that would overlap go a line up."""
    x_top = max(x_max, 1.0)
    w = WIDTH - LEFT - RIGHT

    def px(t: float) -> float:
        return round(LEFT + t / x_top * w, 1)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart timeline" role="img" '
           f'viewBox="0 0 {WIDTH} {ROW_HEIGHT}" width="{WIDTH}" height="{ROW_HEIGHT}" '
           f'data-x-min="0" data-x-max="{x_top:g}" data-plot="{LEFT},{ROW_AXIS},{w},0">',
           f"<title>{escape(title)}</title>",
           f'<text x="{LEFT}" y="15" class="chart-title">{escape(title)}</text>']
    for fault in faults:
        x0, x1 = px(fault.start), px(fault.end)
        out.append(f'<rect class="fault" x="{x0}" y="{ROW_AXIS - 6}" '
                   f'width="{max(x1 - x0, 2.0):.1f}" height="12" fill="{FAULT_FILL}" '
                   f'fill-opacity="0.35"><title>fault {escape(fault.name)}: '
                   f'{fault.start:.1f}s-{fault.end:.1f}s</title></rect>')
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ROW_AXIS}" y2="{ROW_AXIS}" '
               f'stroke="#999"/>')
    out += _x_ticks(x_top, px, ROW_AXIS + 8)
    placed: dict[float, list[tuple[float, float]]] = {y: [] for y in ROW_LEVELS}
    for mark in sorted(marks, key=lambda m: m.t):
        x = px(mark.t)
        colour = MARK_COLOURS.get(mark.kind, "#333")
        width = 6.2 * len(mark.label)
        anchor, x0 = ("start", x) if x + width <= WIDTH - RIGHT else ("end", x - width)
        level = next((y for y in reversed(ROW_LEVELS) if all(
            x0 + width + 6 <= a or b + 6 <= x0 for a, b in placed[y])), ROW_LEVELS[0])
        placed[level].append((x0, x0 + width))
        out.append(f'<g class="mark" data-mark="{escape(mark.kind)}" data-t="{mark.t:g}" '
                   f'data-since="{mark.since:g}"><line x1="{x}" x2="{x}" y1="{level + 3}" '
                   f'y2="{ROW_AXIS}" stroke="{colour}" stroke-width="1.5"/>'
                   f'<circle cx="{x}" cy="{ROW_AXIS}" r="4" fill="{colour}"/>'
                   f'<text x="{x + (3 if anchor == "start" else -3)}" y="{level}" '
                   f'text-anchor="{anchor}" class="mark-label" fill="{colour}">'
                   f'{escape(mark.label)}</text><title>{escape(mark.label)}: '
                   f'{escape(mark.about)} (at {mark.t:.1f}s of the run)</title></g>')
    if not marks:
        out.append(f'<text x="{LEFT + w / 2}" y="{ROW_AXIS - 20}" text-anchor="middle" '
                   f'class="empty">nothing was injected</text>')
    out.append("</svg>")
    return "\n".join(out)
