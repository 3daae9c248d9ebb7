"""`chaos validate` / `chaos --help` wall time vs Chaos Toolkit, and what our startup imports.

    .venv/bin/python benchmarks/validate_vs_chaostoolkit.py [--runs 20]

Chaos Toolkit's console script is also called `chaos`, so it lives in its own venv,
benchmarks/.venv-ctk (created and pip-installed on first use; gitignored). The Chaos Toolkit
experiment is written to a temp dir and is the equivalent of experiments/quickstart.yaml: an
http probe as the steady-state hypothesis, a process action that suspends the demo service
(SIGSTOP), a pause, and a rollback that resumes it (SIGCONT).

Chaos Toolkit asks releases.chaostoolkit.org for a newer version on every command unless given
`--no-version-check`; we pass it (plus `--no-log-file` and an empty settings file) so it runs
offline and measures validation, not a network timeout. As a guard, both tools run with
HTTP(S)_PROXY pointing at a closed port on 127.0.0.1, so no request could leave this machine.

Commands alternate (ours, theirs, ours, ...) in every round, so drift in machine load hits both
alike. Timing is a plain subprocess loop (time.perf_counter around spawn-to-exit, output to
/dev/null), after warm-up runs that fill the page cache and the .pyc files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUR_VENV = REPO / ".venv"
CTK_VENV = REPO / "benchmarks" / ".venv-ctk"
INSTALLED_VENV = REPO / "benchmarks" / ".venv-ours"
QUICKSTART = "experiments/quickstart.yaml"
GOAL = 0.6
TIMEOUT = 60.0  # per command; a hung tool fails the benchmark instead of hanging it

# The quickstart (experiments/quickstart.yaml) in Chaos Toolkit's format.
CTK_EXPERIMENT = {
    "version": "1.0.0",
    "title": "The demo service answers again within 5s after being frozen for 3s",
    "description": "Checks that the demo service answers 200 within 1s, freezes its process "
                   "(SIGSTOP) for 3 seconds, resumes it (SIGCONT), and checks that it answers "
                   "again.",
    "tags": ["quickstart", "demo"],
    "configuration": {"port": "18089"},
    "steady-state-hypothesis": {
        "title": "The demo service answers 200 within 1s",
        "probes": [{
            "type": "probe", "name": "home", "tolerance": 200,
            "provider": {"type": "http", "url": "http://127.0.0.1:${port}/", "timeout": 1},
        }],
    },
    "method": [{
        "type": "action", "name": "freeze-demo",
        "provider": {"type": "process", "path": "pkill",
                     "arguments": ["-STOP", "-f", "chaos.demo.service --port ${port}"]},
        "pauses": {"after": 3},
    }],
    "rollbacks": [{
        "type": "action", "name": "resume-demo",
        "provider": {"type": "process", "path": "pkill",
                     "arguments": ["-CONT", "-f", "chaos.demo.service --port ${port}"]},
    }],
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_ctk(venv: Path, spec: str) -> dict[str, str]:
    """Create the Chaos Toolkit venv if needed; return the installed versions."""
    chaos = venv / "bin" / "chaos"
    if not chaos.exists():
        log(f"creating {venv} and installing {spec} (one time)...")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True,
                       timeout=300)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet",
                        "--disable-pip-version-check", spec], check=True, timeout=900)
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         ("import json, importlib.metadata as m, platform; print(json.dumps({"
          "'chaostoolkit': m.version('chaostoolkit'), "
          "'chaostoolkit-lib': m.version('chaostoolkit-lib'), "
          "'python': platform.python_version()}))")],
        check=True, capture_output=True, text=True, timeout=60).stdout
    versions: dict[str, str] = json.loads(out)
    return versions


def our_version() -> str:
    return subprocess.run([str(OUR_VENV / "bin" / "chaos"), "--version"], capture_output=True,
                          text=True, check=False, timeout=TIMEOUT, cwd=REPO).stdout.strip()


def offline_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY",
                "all_proxy"):
        env[var] = "http://127.0.0.1:9"  # discard port: nothing listens, nothing leaves
    for var in ("NO_PROXY", "no_proxy"):
        env.pop(var, None)
    # Measure what a user gets: bytecode cached. With PYTHONDONTWRITEBYTECODE (set in some dev
    # shells) our editable package is compiled from source on every start, while pip-installed
    # packages (Chaos Toolkit's, and .venv-ours) keep the .pyc files pip wrote at install time.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Spawn-to-exit wall time. Not subprocess.run(timeout=...): with a timeout, Popen.wait
    polls with sleeps of up to 50 ms, which quantises every measurement; a blocking wait plus a
    timer that kills a hung command does not."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killer = threading.Timer(TIMEOUT, proc.kill)
    killer.start()
    try:
        code = proc.wait()
    finally:
        killer.cancel()
    elapsed = time.perf_counter() - start
    if code == -signal.SIGKILL:
        raise RuntimeError(f"{argv} did not finish within {TIMEOUT:g}s")
    return elapsed, code


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


@dataclass
class ImportStats:
    self_us: dict[str, float]  # median over runs
    cum_us: dict[str, float]
    parent: dict[str, str]  # who imported it ("" for the top level)
    count: int
    top_level_us: float


def importtime(argv: list[str], env: dict[str, str], runs: int) -> ImportStats:
    """Parse `-X importtime` (post-order: a module's line follows its children's)."""
    selfs: dict[str, list[int]] = defaultdict(list)
    cums: dict[str, list[int]] = defaultdict(list)
    parent: dict[str, str] = {}
    totals: list[int] = []
    counts: list[int] = []
    for _ in range(runs):
        err = subprocess.run(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             check=False, timeout=TIMEOUT).stderr
        pending: dict[int, list[str]] = defaultdict(list)  # depth -> children awaiting parent
        total = count = 0
        for line in err.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cum_us, raw = line[len("import time:"):].split("|", 2)
            depth = (len(raw) - len(raw.lstrip()) - 1) // 2
            name = raw.strip()
            selfs[name].append(int(self_us))
            cums[name].append(int(cum_us))
            for child in pending.pop(depth + 1, []):
                parent.setdefault(child, name)
            pending[depth].append(name)
            count += 1
            if depth == 0:
                total += int(cum_us)
        for name in pending.pop(0, []):
            parent.setdefault(name, "")
        totals.append(total)
        counts.append(count)
    return ImportStats({n: statistics.median(v) for n, v in selfs.items()},
                       {n: statistics.median(v) for n, v in cums.items()}, parent,
                       round(statistics.median(counts)), statistics.median(totals))


def top(values: dict[str, float], n: int,
        keep: Callable[[str], bool] = lambda name: True) -> list[tuple[str, float]]:
    return sorted(((k, v) for k, v in values.items() if keep(k)), key=lambda kv: -kv[1])[:n]


def phase_breakdown(env: dict[str, str], runs: int) -> dict[str, Any]:
    """In one process: how long the imports take vs the validation itself (median ms)."""
    code = (
        "import time, sys, io, contextlib\n"
        "t0 = time.perf_counter()\n"
        "from chaos.cli import main\n"
        "t1 = time.perf_counter()\n"
        "import chaos.cli.validate, chaos.runner.load\n"
        "t2 = time.perf_counter()\n"
        "from chaos.runner.load import load_experiment\n"
        f"load_experiment({QUICKSTART!r})\n"
        "t3 = time.perf_counter()\n"
        "heavy = sorted(m for m in ('kubernetes', 'chaoslib', 'psutil', 'asyncio', 'ssl', "
        "'matplotlib') if m in sys.modules)\n"
        "print(t1 - t0, t2 - t1, t3 - t2, len(sys.modules), ','.join(heavy))\n"
    )
    rows = []
    for _ in range(runs):
        out = subprocess.run([str(OUR_VENV / "bin" / "python"), "-c", code], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=TIMEOUT, check=True).stdout
        rows.append(out.split())

    def med(i: int) -> float:
        return statistics.median(float(r[i]) for r in rows)

    return {"import chaos.cli (click, errors)": med(0),
            "import validate + loader + vocabulary": med(1),
            "load_experiment(quickstart) itself": med(2),
            "modules": int(rows[-1][3]), "loaded": rows[-1][4] if len(rows[-1]) > 4 else ""}


def ensure_installed_copy(venv: Path) -> Path | None:
    """A regular (non-editable) install of this working tree, as a user gets it from a wheel.

    The editable install in .venv adds setuptools' import-hook finder to every interpreter
    start (~10-15 ms: pathlib, urllib.parse, importlib.util). Returns the venv's `chaos`.
    """
    try:
        if not (venv / "bin" / "python").exists():
            log(f"creating {venv} (a regular install of this tree; one time)...")
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True,
                           timeout=300)
        with tempfile.TemporaryDirectory(prefix="chaos-bench-src-") as src:
            for item in ("pyproject.toml", "README.md"):
                if (REPO / item).exists():
                    shutil.copy2(REPO / item, Path(src) / item)
            shutil.copytree(REPO / "chaos", Path(src) / "chaos",
                            ignore=shutil.ignore_patterns("__pycache__"))
            subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet",
                            "--disable-pip-version-check", "--force-reinstall", src],
                           check=True, timeout=900, capture_output=True)
    except (subprocess.SubprocessError, OSError) as exc:
        log(f"skipping the regular-install row: {exc}")
        return None
    return venv / "bin" / "chaos"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per command (20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per command first")
    parser.add_argument("--importtime-runs", type=int, default=7)
    parser.add_argument("--ctk-venv", type=Path, default=CTK_VENV)
    parser.add_argument("--ctk-spec", default="chaostoolkit",
                        help="pip requirement for Chaos Toolkit (e.g. chaostoolkit==1.19.0)")
    parser.add_argument("--no-installed", action="store_true",
                        help="skip the row for a regular (non-editable) install of this tree")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    versions = ensure_ctk(args.ctk_venv, args.ctk_spec)
    installed = None if args.no_installed else ensure_installed_copy(INSTALLED_VENV)
    env = offline_env()
    ours_py, ours = str(OUR_VENV / "bin" / "python"), str(OUR_VENV / "bin" / "chaos")
    theirs_py, theirs = str(args.ctk_venv / "bin" / "python"), str(args.ctk_venv / "bin" / "chaos")

    with tempfile.TemporaryDirectory(prefix="chaos-bench-ctk-") as tmp:
        ctk_file = Path(tmp) / "quickstart-ctk.json"
        ctk_file.write_text(json.dumps(CTK_EXPERIMENT, indent=2))
        settings = Path(tmp) / "settings.yaml"  # absent file: no controls, no notifications
        ctk_flags = ["--no-version-check", "--no-log-file", "--settings", str(settings)]
        commands = {
            ("validate", "ours"): [ours, "validate", QUICKSTART],
            ("validate", "theirs"): [theirs, *ctk_flags, "validate", str(ctk_file)],
            ("--help", "ours"): [ours, "--help"],
            ("--help", "theirs"): [theirs, "--help"],
            ("python -c pass", "ours"): [ours_py, "-c", "pass"],
            ("python -c pass", "theirs"): [theirs_py, "-c", "pass"],
        }
        if installed is not None:
            inst_py = str(installed.parent / "python")
            commands[("validate", "installed")] = [str(installed), "validate", QUICKSTART]
            commands[("--help", "installed")] = [str(installed), "--help"]
            commands[("python -c pass", "installed")] = [inst_py, "-c", "pass"]
        # Sanity: both validations succeed, and Chaos Toolkit's really validates.
        for key, argv in commands.items():
            proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True,
                                  text=True, check=False, timeout=TIMEOUT)
            if proc.returncode != 0:
                log(f"{key} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
                return 1
        broken = Path(tmp) / "broken.json"
        broken.write_text(json.dumps({**CTK_EXPERIMENT, "method": [{"type": "action"}]}))
        proc = subprocess.run([theirs, *ctk_flags, "validate", str(broken)], cwd=REPO, env=env,
                              capture_output=True, text=True, check=False, timeout=TIMEOUT)
        if proc.returncode == 0:
            log("warning: Chaos Toolkit accepted a broken experiment; is validation running?")

        log(f"warming up ({args.warmup} run(s) per command)...")
        for _ in range(args.warmup):
            for argv in commands.values():
                run_once(argv, env)
        times: dict[tuple[str, str], list[float]] = defaultdict(list)
        keys = list(commands)
        log(f"timing {args.runs} run(s) per command...")
        for i in range(args.runs):
            order = keys if i % 2 == 0 else keys[::-1]  # alternate who goes first
            for key in order:
                elapsed, code = run_once(commands[key], env)
                if code != 0:
                    log(f"{key}: exit {code}")
                    return 1
                times[key].append(elapsed)

        log("measuring imports (-X importtime)...")
        stats = importtime([ours_py, "-X", "importtime", ours, "validate", QUICKSTART], env,
                           args.importtime_runs)
        phases = phase_breakdown(env, args.importtime_runs)

    print("## `chaos validate` / `chaos --help`: chaos vs Chaos Toolkit\n")
    print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs "
          f"(1-min load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after), "
          f"{args.runs} runs per command after {args.warmup} warm-up, wall time spawn-to-exit. "
          f"Ours: {our_version()} (Python {sys.version.split()[0]}); "
          f"theirs: chaostoolkit {versions['chaostoolkit']}, chaostoolkit-lib "
          f"{versions['chaostoolkit-lib']} (Python {versions['python']}), run with "
          f"`{' '.join(ctk_flags[:3])} ...`. *ours* = `.venv/bin/chaos` (editable install); "
          f"*ours, installed* = a regular install of the same tree (benchmarks/.venv-ours).\n")
    print("| command | who | median ms | p90 ms | min ms | ours/theirs (median) | goal |")
    print("|---|---|---:|---:|---:|---:|---|")
    for command in ("validate", "--help", "python -c pass"):
        label = f"`chaos {command}`" if command != "python -c pass" else (
            "`python -c pass` (interpreter floor)")
        b = times[(command, "theirs")]
        for who, name in (("theirs", "Chaos Toolkit"), ("ours", "ours"),
                          ("installed", "ours, installed")):
            a = times.get((command, who))
            if not a:
                continue
            ratio = goal = ""
            if who != "theirs":
                r = statistics.median(a) / statistics.median(b)
                ratio = f"{r:.2f}×"
                if command == "validate":
                    goal = f"≤ {GOAL}×: {'met' if r <= GOAL else 'NOT met'}"
            print(f"| {label} | {name} | {ms(statistics.median(a))} | {ms(pct(a, 90))} | "
                  f"{ms(min(a))} | {ratio} | {goal} |")
    floor = statistics.median(times[("python -c pass", "ours")])
    budget = GOAL * statistics.median(times[("validate", "theirs")])
    print(f"\nThe goal means our `chaos validate` must finish in ≤ {ms(budget)} ms here; the "
          f"bare interpreter of .venv takes {ms(floor)} ms of that.\n")

    print("### Where our `chaos validate` spends its time\n")
    print(f"In-process (median of {args.importtime_runs}): "
          + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in phases.items()
                      if isinstance(v, float))
          + f"; {phases['modules']} modules in sys.modules; of the heavy ones loaded: "
          f"{phases['loaded'] or 'none'}.\n")
    print(f"`python -X importtime .venv/bin/chaos validate {QUICKSTART}` (median of "
          f"{args.importtime_runs} runs; importtime adds overhead, so compare rows, not totals "
          f"with the wall times above): {stats.count} modules, top-level total "
          f"{stats.top_level_us / 1000:.1f} ms.\n")
    sections = [
        ("Top 10 imports by cumulative time (nested: a row includes the rows it imports)",
         stats.cum_us, lambda n: True, "cumulative ms"),
        (("Top 10 non-`chaos` imports by cumulative time (stdlib/third-party; the importer "
          "says which of our modules to make lazy)"), stats.cum_us,
         lambda n: n.split(".")[0] != "chaos", "cumulative ms"),
        ("Top 10 modules by self time (their own top-level code)", stats.self_us,
         lambda n: True, "self ms"),
    ]
    for title, values, keep, column in sections:
        print(f"{title}:\n")
        print(f"| # | module | {column} | imported by |")
        print("|---:|---|---:|---|")
        for i, (name, us) in enumerate(top(values, 10, keep), 1):
            print(f"| {i} | `{name}` | {us / 1000:.1f} | "
                  f"{('`' + stats.parent[name] + '`') if stats.parent.get(name) else '(top)'} |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
