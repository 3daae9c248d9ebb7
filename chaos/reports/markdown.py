"""The Markdown report: the same summary as the HTML one, for PR comments and wikis.

GitHub, GitLab and wikis strip inline SVG from Markdown, so availability over time is shown as a
text sparkline (one block per second) with the fault windows marked underneath.
"""

from __future__ import annotations

from chaos.reports import analysis, postmortem
from chaos.reports.analysis import Facts, Line, Window
from chaos.reports.collection import Collection

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
              "checks; an abort scores 0; see docs/reports.md)", "",
              "| " + " | ".join(analysis.SUMMARY_HEADER) + " |",
              "|" + "---|" * len(analysis.SUMMARY_HEADER)]
    for i, f in enumerate(all_facts, 1):
        lines.append("| " + " | ".join(_cell(c) for c in analysis.summary_cells(i, f)) + " |")
    for i, f in enumerate(all_facts, 1):
        lines += ["", *_section(i, f)]
    return "\n".join(lines) + "\n"


def _section(i: int, f: Facts) -> list[str]:
    lines = [f"## {i}. {f.title} — {f.verdict}", ""]
    if f.verdict == "skipped":
        return lines + [f"`{f.label}` did not run: {f.reason}"]
    lines += [f"- file: `{f.source or f.label}`, run `{f.run or '—'}`, exit {f.exit_code}"]
    if f.reason:
        lines.append(f"- why: {f.reason}")
    lines += [f"- time to detect: {analysis.detect_text(f, long=True)}",
              f"- time to recover: {analysis.recover_text(f, long=True)}",
              f"- error budget used: {analysis.budget_text(f.budget)}"]
    for t, check in f.breaches:
        lines.append(f"- guardrail `{check}` breached at {t:.1f}s")
    spark = [f"    {line.name:<8} {sparkline(line, f.end)}" for line in f.availability]
    if spark:
        lines += ["", "Availability per second (▁ 0% … █ 100%), faults marked `^`:", "", *spark,
                  f"    {'faults':<8} {fault_marks(f.faults, f.end)}"]
    if f.failing:
        lines += ["", "| phase | check | status | measured | events | why |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {c['phase']} | `{_cell(str(c['check']))}` | {c['status']} | "
                  f"{_cell(str(c.get('measured') or '—'))} | {c.get('events', '')} | "
                  f"{_cell(str(c.get('reason') or ''))} |" for c in f.failing]
    if f.needs_postmortem:
        lines += ["", f"Post-mortem draft: `{postmortem.filename(i, f)}`"]
    return lines


def _columns(end: float) -> int:
    return max(1, min(MAX_WIDTH, int(end) + 1))


def sparkline(line: Line, end: float) -> str:
    width = _columns(end)
    step = (end + 1) / width
    cells = [" "] * width
    for t, v in line.points:
        col = min(width - 1, int(t / step))
        level = BLOCKS[min(len(BLOCKS) - 1, int(v * (len(BLOCKS) - 1) + 0.5))]
        cells[col] = min(cells[col], level) if cells[col] != " " else level
    return "".join(cells)


def fault_marks(faults: tuple[Window, ...], end: float) -> str:
    width = _columns(end)
    step = (end + 1) / width
    cells = [" "] * width
    for w in faults:
        for col in range(int(w.start / step), min(width - 1, int(w.end / step)) + 1):
            cells[col] = "^"
    return "".join(cells).rstrip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
