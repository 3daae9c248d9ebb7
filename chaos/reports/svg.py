"""Line charts as inline SVG: no plotting library, no script, no network, prints anywhere.

Every drawn series also carries its data (`data-values="t,v;t,v"`) and the plot carries its axis
ranges (`data-x-min` ... `data-plot`), so tests and other tools can check a chart against the
journal it was drawn from, pixel by pixel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

from chaos.reports.analysis import Line, Window

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2")
WIDTH, HEIGHT = 720, 230
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 26, 34


def nice_ceiling(value: float) -> float:
    """1, 2, 2.5 or 5 times a power of ten, at least `value` (axis tops people can read)."""
    if value <= 0:
        return 1.0
    power = float(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def chart(title: str, lines: Sequence[Line], *, x_max: float, y_min: float = 0.0,
          y_max: float | None = None, y_label: Callable[[float], str] = str,
          faults: Sequence[Window] = (), breaches: Sequence[tuple[float, str]] = (),
          scale: float = 1.0) -> str:
    """`scale` multiplies values for display (1000: seconds shown as ms); data stays unscaled."""
    top_value = y_max if y_max is not None else nice_ceiling(
        max((v for line in lines for _, v in line.points), default=0.0) * 1.1)
    x_top = max(x_max, 1.0)
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
           f'<text x="{LEFT}" y="16" class="chart-title">{escape(title)}</text>']
    for fault in faults:
        x0, x1 = px(fault.start), px(fault.end)
        out.append(f'<rect class="fault" data-fault="{escape(fault.name)}" '
                   f'data-start="{fault.start:g}" data-end="{fault.end:g}" x="{x0}" y="{TOP}" '
                   f'width="{max(x1 - x0, 2.0):.1f}" height="{h}" fill="#f4a261" '
                   f'fill-opacity="0.28"><title>fault {escape(fault.name)}: '
                   f'{fault.start:.1f}s-{fault.end:.1f}s</title></rect>')
    out += _axes(x_top, y_min, top_value, y_label, scale, px, py)
    for i, line in enumerate(lines):
        colour = PALETTE[i % len(PALETTE)]
        values = ";".join(f"{t:g},{v:g}" for t, v in line.points)
        points = " ".join(f"{px(t)},{py(v)}" for t, v in line.points)
        out.append(f'<polyline class="series" data-series="{escape(line.name)}" '
                   f'data-values="{values}" points="{points}" fill="none" stroke="{colour}" '
                   f'stroke-width="1.8" stroke-linejoin="round"/>')
        if len(line.points) == 1:
            t, v = line.points[0]
            out.append(f'<circle cx="{px(t)}" cy="{py(v)}" r="2.5" fill="{colour}"/>')
        out.append(f'<rect x="{LEFT + 8 + 120 * i}" y="{HEIGHT - 12}" width="10" height="3" '
                   f'fill="{colour}"/><text x="{LEFT + 22 + 120 * i}" y="{HEIGHT - 8}" '
                   f'class="legend">{escape(line.name)}</text>')
    for t, check in breaches:
        x = px(t)
        out.append(f'<g class="breach" data-t="{t:g}"><line x1="{x}" x2="{x}" y1="{TOP}" '
                   f'y2="{TOP + h}" stroke="#b00020" stroke-width="2" stroke-dasharray="4 3"/>'
                   f'<path d="M{x - 5},{TOP - 8} L{x + 5},{TOP - 8} L{x},{TOP} Z" '
                   f'fill="#b00020"/><title>guardrail breached at {t:.1f}s: {escape(check)}'
                   f'</title></g>')
    if not lines:
        out.append(f'<text x="{LEFT + w / 2}" y="{TOP + h / 2}" text-anchor="middle" '
                   f'class="empty">no measurements</text>')
    out.append("</svg>")
    return "\n".join(out)


def _axes(x_top: float, y_min: float, y_top: float, label: Callable[[float], str], scale: float,
          px: Callable[[float], float], py: Callable[[float], float]) -> list[str]:
    out = [f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
           f'height="{HEIGHT - TOP - BOTTOM}" fill="none" stroke="#999"/>']
    for i in range(5):
        v = y_min + (y_top - y_min) * i / 4
        y = py(v)
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" stroke="#e5e5e5"/>'
                   f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end" class="tick">'
                   f'{escape(label(v * scale))}</text>')
    step = nice_ceiling(x_top / 8)
    t = 0.0
    while t <= x_top + 1e-9:
        x = px(t)
        out.append(f'<line x1="{x}" x2="{x}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM + 4}" '
                   f'stroke="#999"/><text x="{x}" y="{HEIGHT - BOTTOM + 15}" '
                   f'text-anchor="middle" class="tick">{t:g}s</text>')
        t += step
    return out
