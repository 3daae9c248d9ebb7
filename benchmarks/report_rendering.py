"""How long rendering a game day's reports takes, and how big they get, as runs grow longer.

Synthetic journals (chaos.journal/v1, the fields the reports read): one HTTP probe and runner
traffic per experiment, a fault in the middle, a second of errors, one failing check so every
experiment gets a post-mortem draft. Renders HTML, Markdown, JUnit and the drafts in-process,
as `chaos report --format all` does, and prints a Markdown table (progress on stderr). "chart
step" is the longest step of the HTML charts: 1 s, or the bucket of seconds a long run's charts
are merged into (each drawn at its worst second, see chaos/reports/svg.py). Runs of up to a
minute also hold their 100 ms ticks (`fine_series`), which their charts draw instead.

    .venv/bin/python benchmarks/report_rendering.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos.reports import bundle, html, junit, markdown
from chaos.reports.collection import Collection, Entry

SIZES = ((1, 60), (10, 60), (10, 600), (20, 3600))  # experiments x seconds of measurements
FINE_SECONDS = 60  # runs up to this long also hold their 100 ms ticks, as the runner writes


def journal(index: int, seconds: int, rng: random.Random) -> dict[str, Any]:
    start, fault = 0.5, seconds / 2
    series = []
    for t in range(seconds):
        bad = fault <= t < fault + 1
        series.append({"t": t, "probe": "home", "requests": 4, "errors": 4 if bad else 0,
                       "p50": None if bad else rng.uniform(0.001, 0.002),
                       "p95": None if bad else rng.uniform(0.002, 0.004),
                       "max": None if bad else rng.uniform(0.004, 0.008)})
        series.append({"t": t, "probe": "traffic", "requests": 200, "errors": 3 if bad else 0,
                       "p50": rng.uniform(0.001, 0.002), "p95": rng.uniform(0.002, 0.01),
                       "p99": rng.uniform(0.01, 0.05), "lag_p99": 0.0002})
    check = {"check": "availability >= 99%", "status": "PASS", "measured": "100%",
             "value": 1.0, "events": 200 * seconds}
    failing = {**check, "check": "home >= 99%", "status": "FAIL", "measured": "98%"}
    events = [{"event": "run.started", "t": 0.0, "ts": 1.8e9},
              {"event": "fault.injected", "t": fault, "ts": 1.8e9 + fault, "fault": "freeze",
               "target": "service demo"},
              {"event": "fault.reverted", "t": fault + 1, "ts": 1.8e9 + fault + 1,
               "fault": "freeze", "outcome": "reverted"}]
    return {
        "schema": "chaos.journal/v1", "run": f"run-{index}", "started": 1.8e9,
        "experiment": {"title": f"Experiment {index}", "source": f"experiments/e{index}.yaml",
                       "slo": {"objective": 0.995, "period": 2592000.0},
                       "faults": [{"name": "freeze", "duration": 1.0}]},
        "duration": seconds + 1.0, "verdict": "deviated", "exit_code": 1,
        "reason": "hypothesis failed", "injections": [{
            "fault": "freeze", "type": "process.suspend", "target": "service demo",
            "injected_at": fault, "reverted_at": fault + 1, "outcome": "reverted"}],
        "phases": {"before": {"started": start, "finished": fault, "checks": [check]},
                   "during": {"started": fault, "finished": fault + 1, "checks": []},
                   "after": {"started": fault + 1, "finished": seconds, "checks": [failing]}},
        "recovery": {"seconds": 0.2, "within": 5.0}, "detection": {"seconds": None},
        "series": series, "events": events,
        **({"fine_series": {"step": 0.1, "points": ticks(seconds, fault, rng)}}
           if seconds <= FINE_SECONDS else {}),
    }


def ticks(seconds: int, fault: float, rng: random.Random) -> list[dict[str, Any]]:
    """The short run's rows per 100 ms: a probe sample every 250 ms, traffic every tick."""
    points = []
    for tick in range(seconds * 10):
        t, bad = tick / 10, fault <= tick / 10 < fault + 1
        if tick % 5 in (0, 2):
            points.append({"t": t, "probe": "home", "requests": 1, "errors": int(bad),
                           "p50": None if bad else rng.uniform(0.001, 0.002),
                           "p95": None if bad else rng.uniform(0.002, 0.004),
                           "max": None if bad else rng.uniform(0.004, 0.008)})
    for tick in range(seconds * 10):
        bad = fault <= tick / 10 < fault + 1
        points.append({"t": tick / 10, "probe": "traffic", "requests": 20,
                       "errors": 3 if bad else 0, "p50": rng.uniform(0.001, 0.002),
                       "p95": rng.uniform(0.002, 0.01), "p99": rng.uniform(0.01, 0.05)})
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(7)
    print("| experiments × seconds | series rows | HTML | Markdown | JUnit | post-mortems | "
          "HTML size | chart step |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for count, seconds in SIZES:
        print(f"rendering {count} × {seconds}s ...", file=sys.stderr)
        journals = [journal(i, seconds, rng) for i in range(1, count + 1)]
        collection = Collection("Benchmark", tuple(Entry(f"e{i}.yaml", j) for i, j in
                                                   enumerate(journals, 1)))
        renderers = {
            "html": lambda c=collection: html.render(c),
            "markdown": lambda c=collection: markdown.render(c),
            "junit": lambda js=journals: junit.render(js, "Benchmark", []),
            "postmortem": lambda c=collection: "".join(bundle.drafts(c).values()),
        }
        timings, sizes, step = {}, {}, 0.0
        for name, render in renderers.items():
            runs = []
            for _ in range(args.repeat):
                began = time.perf_counter()
                text = render()
                runs.append(time.perf_counter() - began)
            timings[name], sizes[name] = statistics.median(runs), len(text.encode())
            if name == "html":
                step = max(float(s) for s in re.findall(r'data-step="([\d.]+)"', text))
        rows = sum(len(j["series"]) for j in journals)
        print(f"| {count} × {seconds}s | {rows:,} | "
              + " | ".join(f"{timings[n] * 1000:,.0f} ms" for n in renderers)
              + f" | {sizes['html'] / 1024:,.0f} KiB | {step:g} s |")


if __name__ == "__main__":
    main()
