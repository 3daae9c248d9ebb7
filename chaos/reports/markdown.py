"""The Markdown report: the same summary as the HTML one, for PR comments and wikis.

GitHub, GitLab and wikis strip inline SVG from Markdown, so availability over time is shown as a
text sparkline with the fault windows marked underneath: one block per second, or, for runs
longer than MAX_WIDTH seconds, per bucket of seconds showing its worst second (the same
bucketing as the HTML charts, analysis.worst_per_bucket). Only a second at 100% is a full block.
"""

from __future__ import annotations

import math

from chaos.records import RunRecord
from chaos.reports import analysis, postmortem, timeline
from chaos.reports.analysis import Facts, Line, Window, events_text
from chaos.reports.collection import Collection
from chaos.units import format_duration

BLOCKS = "▁▂▃▄▅▆▇█"
MAX_WIDTH = 90


def render(collection: Collection) -> str:
    all_facts = [analysis.facts(e) for e in collection.entries]
    meta = analysis.about(collection)
    score = analysis.resilience_score(all_facts)
    lines = [f"# {_cell(collection.title)}", ""]
    if meta:
        lines += [" · ".join(meta), ""]
    lines += [f"**Resilience score: {analysis.score_text(score)}** (weighted pass rate of the "
              "checks; an abort scores 0; see docs/reports.md)", ""]
    mttd = analysis.mean_time_to_detect(all_facts)
    if mttd is not None:
        lines += [f"**Mean time to detect: {format_duration(mttd)}** (expected alerts, from the "
                  "first injection until they fired)", ""]
    lines += ["| " + " | ".join(analysis.SUMMARY_HEADER) + " |",
              "|" + "---|" * len(analysis.SUMMARY_HEADER)]
    for i, f in enumerate(all_facts, 1):
        lines.append("| " + " | ".join(_cell(c) for c in analysis.summary_cells(i, f)) + " |")
    for i, (f, entry) in enumerate(zip(all_facts, collection.entries), 1):
        lines += ["", *_section(i, f, entry.journal)]
    return "\n".join(lines) + "\n"


def _section(i: int, f: Facts, journal: RunRecord | None) -> list[str]:
    lines = [f"## {i}. {f.title} — {f.verdict}", ""]
    if f.verdict == "skipped":
        return lines + [f"`{f.label}` did not run: {f.reason}"]
    lines += [f"- file: `{f.source or f.label}`, run `{f.run or '—'}`, exit {f.exit_code}"]
    if f.reason:
        lines.append(f"- why: {f.reason}")
    lines += [f"- time to detect: {analysis.detect_text(f, long=True)}",
              f"- time to recover: {analysis.recover_text(f, long=True)}",
              f"- error budget used: {analysis.budget_text(f.budget)}"]
    if journal is not None and (row := timeline.marks(f, journal)):
        lines.append(f"- timeline: {timeline.summary_line(row)}")
    for t, check in f.breaches:
        lines.append(f"- guardrail `{check}` breached at {t:.1f}s")
    spark = [f"    {line.name:<8} {sparkline(line, f.end)}" for line in f.availability]
    if spark:
        seconds = bucket(f.end)
        per = "per second" if seconds == 1 else \
            f"per {format_duration(seconds)}, the worst second of each"
        lines += ["", f"Availability {per} (▁ 0% … █ 100%), faults marked `^`:", "", *spark,
                  f"    {'faults':<8} {fault_marks(f.faults, f.end)}"]
    if f.failing:
        lines += ["", "| phase | check | status | measured | events | why |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {phase} | `{_cell(str(c.check))}` | {c.status} | "
                  f"{_cell(str(c.measured or '—'))} | {events_text(c)} | "
                  f"{_cell(str(c.reason or ''))} |" for phase, c in f.failing]
    if f.needs_postmortem:
        lines += ["", f"Post-mortem draft: `{postmortem.filename(i, f)}`"]
    return lines


def bucket(end: float) -> int:
    """Seconds per block: 1 while the run fits in MAX_WIDTH blocks."""
    return analysis.bucket_seconds(end, MAX_WIDTH)


def _columns(end: float) -> int:
    return max(1, math.ceil(end / bucket(end)))


def sparkline(line: Line, end: float) -> str:
    seconds, width = bucket(end), _columns(end)
    cells = [" "] * width
    for t, v in analysis.worst_per_bucket(line, seconds, min).points:
        col = min(width - 1, int(t / seconds))
        # only a perfect second is a full block: 99.6% must not look like 100%
        level = BLOCKS[min(len(BLOCKS) - (1 if v >= 1 else 2), int(v * (len(BLOCKS) - 1) + 0.5))]
        cells[col] = min(cells[col], level) if cells[col] != " " else level
    return "".join(cells)


def fault_marks(faults: tuple[Window, ...], end: float) -> str:
    seconds, width = bucket(end), _columns(end)
    cells = [" "] * width
    for w in faults:
        for col in range(int(w.start / seconds), min(width - 1, int(w.end / seconds)) + 1):
            cells[col] = "^"
    return "".join(cells).rstrip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
