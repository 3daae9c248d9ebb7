"""Journals as `chaos run` writes them, reduced to what report tests vary: a verdict and its
checks' statuses, and any field given as a keyword. Reports are tested on these without running
an experiment."""

from __future__ import annotations

from typing import Any


def journal(verdict: str, statuses: list[str], **extra: Any) -> dict[str, Any]:
    checks = [{"check": f"c{i}", "status": s, "measured": "", "events": 10}
              for i, s in enumerate(statuses)]
    return {"schema": "chaos.journal/v1", "run": "r", "verdict": verdict, "exit_code": 0,
            "reason": "", "duration": 10.0, "experiment": {"title": verdict, "faults": []},
            "phases": {"before": {"started": 0.5, "checks": checks}}, "injections": [],
            "series": [], "events": [], **extra}
