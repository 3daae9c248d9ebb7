"""Our traffic generator side by side with wrk and Locust on one server, and its workers (issue 18).

    .venv/bin/python benchmarks/traffic_side_by_side.py [--seconds 4]
        [--rates 5000,10000,15000,20000,30000,40000,50000] [--locust-users 64]
        [--locust-throughput 0] [--workers 1,2] [--worker-rates 4000,8000,...] [--no-workers]

Why one script: the issue's ratios (ours vs Locust per core, ours vs wrk) only mean something
when every generator meets the same server on the same core in the same minute; on a shared
machine two runs minutes apart differ by 2x.

The server (a minimal HTTP/1.1 keep-alive responder, uvloop when installed) runs in its own
process pinned to the last CPU and counts the requests it answers (a line on its stdin asks for
the count). Each single-core generator runs alone, pinned to CPU 0:
- wrk (Debian: apt-get install -y wrk): closed loop, C, 1 thread, 64 connections; the most
  this server answers from one core. Its CPU is the kernel's rusage of the process (wait4).
- Locust FastHttpUser (install into the venv: .venv/bin/pip install locust; its column is
  skipped when it is absent): one process, --locust-users users, each as fast as it can
  (--locust-throughput 0) or at constant_throughput(N) per user. Its req/s is the server's count
  over a window after the users started, its CPU is /proc/PID/stat over the same window; its own
  stats are printed beside them as a cross-check.
- ours, stdlib asyncio and uvloop (pip install -e '.[fast]'), open model, at each rate: a rate
  is kept when >= 99% of it was answered (timeouts do not count) with p99 scheduler lag <= 5
  ms; the highest rate within the runner's own INVALID bound (p99 lag <= 25 ms) is shown too.
  CPU per request is the process's CPU time over the window. A loop's sweep stops once < 95%
  of a rate is answered.
"req/s per CPU-second" (1e6 / CPU µs per request) is what one whole core would do at that
cost: the per-core comparison that holds when neighbours take part of CPU 0.
Then the workers (traffic.workers): 1 and N generator processes (uvloop when installed,
unpinned, this process merging their histograms) at each --worker-rates rate; efficiency per
added worker = kept(N) / (N x kept(1)). The issue's goal (2 workers >= 1.7x one) assumes 2
free cores; with the server on one of 2 CPUs they are not, and the table says so.

Markdown on stdout (the load average before and after in it), progress on stderr. Loopback
only; every process started here is ended in a `finally`; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVER = r"""
import asyncio, os, sys
try:
    import uvloop; uvloop.install()
except ImportError:
    pass
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
answered = 0
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t; self.buf = b""
    def data_received(self, data):
        global answered
        self.buf += data
        n = self.buf.count(b"\r\n\r\n")
        if n:
            self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4:]
            self.t.write(RESPONSE * n)
            answered += n
def tell():  # one line in, the count out: the benchmark's view of what was served
    if not os.read(0, 4096):
        os._exit(0)
    sys.stdout.write(f"{answered}\n"); sys.stdout.flush()
async def main():
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(P, "127.0.0.1", 0, backlog=4096)
    loop.add_reader(0, tell)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""

LOCUSTFILE = """
from locust import FastHttpUser, constant, constant_throughput, task

class Bench(FastHttpUser):
    host = "http://127.0.0.1:{port}"
    wait_time = {wait}

    @task
    def get(self):
        self.client.get("/")
"""

TICK = os.sysconf("SC_CLK_TCK")
LABELS = {"wrk": "wrk", "locust": "Locust FastHttpUser", "stdlib": "ours, stdlib asyncio",
          "uvloop": "ours, uvloop"}  # for a row that was skipped
MAX_LAG_MS = 25.0  # TrafficSpec.max_lag: above it the runner calls a window INVALID


@dataclass(frozen=True)
class Row:
    """One generator's line of the summary: req/s, CPU per request, and what they mean."""

    who: str
    model: str
    rate: float  # req/s: the most (closed loop) or the highest kept (open model)
    cpu_us: float | None  # CPU microseconds per request, None when not measured
    lag_ms: float | None = None  # p99 scheduler lag at that rate (open model only)
    note: str = ""
    valid_rate: float = 0.0  # open model: the highest rate with p99 lag <= MAX_LAG_MS


class Server:
    """The one server every generator meets, pinned to the last CPU, counting answers."""

    def __init__(self) -> None:
        last = cpus()[-1]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, preexec_fn=lambda: os.sched_setaffinity(0, {last}))
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def answered(self) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pin_first() -> None:
    os.sched_setaffinity(0, {cpus()[0]})


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all its threads) from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_wrk(server: Server, seconds: float) -> Row | str:
    """wrk with its CPU: the kernel's rusage of the process, from wait4."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return "wrk not installed (Debian: apt-get install -y wrk)"
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([wrk, "-t1", "-c64", f"-d{max(1, round(seconds))}s",
                                 f"http://127.0.0.1:{server.port}/"], stdout=out,
                                preexec_fn=pin_first)
        deadline = time.monotonic() + seconds + 30
        while (reaped := os.wait4(proc.pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                proc.kill()
            time.sleep(0.05)
        proc.returncode = 0  # reaped above: keep Popen from waiting on a gone pid
        usage = reaped[2]
        out.seek(0)
        text = out.read()
    total = re.search(r"(\d+) requests in", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not (total and rps):
        return f"wrk printed no result: {text[-300:]!r}"
    cpu = usage.ru_utime + usage.ru_stime
    return Row("wrk (C), 1 thread, 64 connections", "closed loop, as fast as it can",
               float(rps[1]), cpu / int(total[1]) * 1e6, note="CPU: rusage of the process")


def run_locust(server: Server, seconds: float, users: int, throughput: float) -> Row | str:
    """One Locust process pinned to CPU 0; req/s from the server, CPU from /proc."""
    import importlib.util

    if importlib.util.find_spec("locust") is None:
        return "Locust not installed (.venv/bin/pip install locust): skipped"
    wait = "constant(0)" if throughput <= 0 else f"constant_throughput({throughput:g})"
    who = (f"Locust FastHttpUser, 1 process, {users} users, "
           + ("each as fast as it can" if throughput <= 0 else f"{throughput:g} req/s each"))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "locustfile.py").write_text(LOCUSTFILE.format(port=server.port, wait=wait))
        stats = Path(tmp) / "stats"  # Locust adds ".json"
        log = Path(tmp) / "stderr"
        with log.open("w") as err:
            # -t bounds it should this process die before its SIGTERM
            proc = subprocess.Popen(
                [sys.executable, "-m", "locust", "-f", str(Path(tmp) / "locustfile.py"),
                 "--headless", "--only-summary", "-u", str(users), "-r", str(users),
                 "-t", f"{int(seconds) + 90}s", "--json-file", str(stats),
                 "--loglevel", "WARNING"],
                cwd=tmp, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=pin_first)
        try:
            window = locust_window(server, proc.pid, seconds)
            proc.send_signal(signal.SIGTERM)  # Locust then writes its stats and exits
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass  # its own stats are then missing, and the row says so
        finally:
            proc.kill()
            proc.wait(10)
        if window is None:
            return f"Locust sent nothing within 60 s: {log.read_text()[-300:]!r}"
        own = locust_own_stats(stats)
    answered, cpu, elapsed = window
    print(f"Locust: server counted {answered / elapsed:,.0f} req/s in the window; {own}",
          file=sys.stderr)
    model = "closed loop, as fast as it can" if throughput <= 0 else "closed loop, paced users"
    return Row(who, model, answered / elapsed, cpu / max(answered, 1) * 1e6,
               note=f"req/s counted by the server, CPU from /proc; its own stats: {own}")


def locust_window(server: Server, pid: int, seconds: float) -> tuple[int, float, float] | None:
    """(requests the server answered, Locust's CPU s, s elapsed) over `seconds` once the
    users send (gevent and Locust take seconds to import on a loaded machine)."""
    base, deadline = server.answered(), time.monotonic() + 60
    while server.answered() == base:
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)
    time.sleep(1.5)  # every user spawned (-r = -u: all in the first second)
    count0, cpu0, t0 = server.answered(), cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    count1, cpu1, t1 = server.answered(), cpu_seconds(pid), time.monotonic()
    return count1 - count0, cpu1 - cpu0, t1 - t0


def locust_own_stats(path: Path) -> str:
    try:
        entries = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return "none written"
    requests = sum(e["num_requests"] for e in entries)
    failures = sum(e["num_failures"] for e in entries)
    spans = [e["last_request_timestamp"] - e["start_time"] for e in entries if e["num_requests"]]
    rps = requests / max(spans) if spans and max(spans) > 0 else 0.0
    return f"{rps:,.0f} req/s over its whole run, {failures} failures"


OURS = """
import asyncio, json, math, os, sys, time
sys.path.insert(0, {root!r})
os.sched_setaffinity(0, {{{cpu}}})
from chaos.slo.traffic import HttpTraffic, TrafficSpec, loop_factory
async def main():
    t = HttpTraffic(TrafficSpec("http://127.0.0.1:{port}/", rate={rate}, timeout=5.0,
                                connections=512))
    t.start()
    await asyncio.sleep(0.5)  # warm-up: connections opened
    start, cpu0 = time.monotonic(), sum(os.times()[:2])
    await asyncio.sleep({seconds})
    end, cpu1 = time.monotonic(), sum(os.times()[:2])
    await t.settle(end)
    w = t.window(start, end)
    await t.stop()
    # windows are whole 100 ms ticks of intended send time: count over exactly those
    ticks = math.floor((end - t.t0) * 10) - math.floor((start - t.t0) * 10)
    print(json.dumps(dict(events=w.events, errors=w.errors, seconds=ticks / 10, cpu=cpu1 - cpu0,
                          p50=w.quantile(50), p99=w.quantile(99), lag99=w.lag_quantile(99))))
factory = loop_factory() if {uvloop!r} else None
with asyncio.Runner(loop_factory=factory) as runner:
    runner.run(main())
"""


def run_ours(port: int, rate: float, seconds: float, loop: str) -> dict[str, float]:
    """One rate in a child process pinned to CPU 0, so each loop kind starts fresh."""
    code = OURS.format(root=str(ROOT), cpu=cpus()[0], port=port, rate=rate, seconds=seconds,
                       uvloop=loop == "uvloop")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def sweep_ours(port: int, rates: list[float], seconds: float, loop: str) -> Row | str:
    """Rates in turn, one Markdown row each; the highest kept one for the summary, and the
    highest the runner itself would judge (p99 lag <= MAX_LAG_MS) when none is kept."""
    if loop == "uvloop":
        import importlib.util

        if importlib.util.find_spec("uvloop") is None:
            return "uvloop not installed (pip install -e '.[fast]'): skipped"
    who = f"ours, {'stdlib asyncio' if loop == 'asyncio' else 'uvloop'}, 1 process"
    kept = valid = Row(who, "open model, highest rate kept", 0.0, None)
    for rate in rates:
        print(f"ours ({loop}) at {rate:,.0f}/s ...", file=sys.stderr)
        r = run_ours(port, rate, seconds, loop)
        answered = (r["events"] - r["errors"]) / r["seconds"]  # timeouts are not throughput
        lag = (r["lag99"] or 0) * 1000
        cpu_us = r["cpu"] / max(r["events"], 1) * 1e6
        if answered >= 0.99 * rate and lag <= MAX_LAG_MS:
            valid = replace(valid, rate=rate, cpu_us=cpu_us, lag_ms=lag)
            if lag <= 5.0:
                kept = replace(kept, rate=rate, cpu_us=cpu_us, lag_ms=lag)
        print(f"| {loop} | {rate:,.0f} | {answered:,.0f} | {r['errors']} | "
              f"{(r['p50'] or 0) * 1000:.2f} ms | {(r['p99'] or 0) * 1000:.2f} ms | "
              f"{lag:.2f} ms | {cpu_us:.1f} | {'yes' if kept.rate == rate else 'no'} |",
              flush=True)
        time.sleep(0.5)
        if answered < 0.95 * rate:
            break  # it cannot even answer this rate: higher ones are not kept either
    # CPU per request falls as the rate rises (fewer wakeups per request): it is taken at the
    # highest rate the runner would still judge, as Locust's and wrk's are at their maximum
    note = (f"highest rate with p99 lag ≤ {MAX_LAG_MS:g} ms (the runner's INVALID bound): "
            f"{valid.rate:,.0f}; CPU at that rate")
    return replace(kept, valid_rate=valid.rate, cpu_us=valid.cpu_us,
                   note=note if kept.rate else f"no rate kept; {note}")


async def worker_rate(port: int, rate: float, workers: int,
                      seconds: float) -> tuple[float, float, float]:
    """(share answered, p99 lag ms, CPU µs per request of the workers and of this process,
    which merges them) over `seconds` at `rate` with `workers` processes."""
    import psutil

    from chaos.slo.traffic import traffic_from_spec
    from chaos.slo.traffic_workers import WorkerTraffic

    raw = {"http": {"url": f"http://127.0.0.1:{port}/", "rate": rate, "timeout": 1.0}}
    traffic = WorkerTraffic(traffic_from_spec(raw["http"]), raw, workers)
    traffic.start()
    await traffic.ready()
    pids = [os.getpid()] + [c.pid for c in psutil.Process().children()
                            if "chaos.slo.traffic_workers" in " ".join(c.cmdline())]
    start, end = traffic.t0 + 0.5, traffic.t0 + 0.5 + seconds  # past the first connections
    await asyncio.sleep(start - time.monotonic())
    cpu0 = sum(cpu_seconds(pid) for pid in pids)
    await asyncio.sleep(end - time.monotonic())
    cpu1 = sum(cpu_seconds(pid) for pid in pids)
    await traffic.settle(end)
    window = traffic.window(start, end)
    await traffic.stop()
    lag = (window.lag_quantile(99) or 0.0) * 1000
    answered = window.events - window.errors  # timeouts are not throughput
    return answered / (rate * seconds), lag, (cpu1 - cpu0) / max(window.events, 1) * 1e6


def sweep_workers(port: int, counts: list[int], rates: list[float],
                  seconds: float) -> dict[int, Row]:
    from chaos.slo.traffic import loop_factory

    kept: dict[int, Row] = {}
    for workers in counts:
        for rate in rates:
            print(f"{workers} worker(s) at {rate:,.0f}/s ...", file=sys.stderr)
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                share, lag, cpu_us = runner.run(worker_rate(port, rate, workers, seconds))
            ok = share >= 0.99 and lag <= 5.0
            print(f"| {workers} | {rate:,.0f} | {share:.1%} | {lag:.1f} ms | {cpu_us:.1f} | "
                  f"{'yes' if ok else 'no'} |", flush=True)
            if ok:
                kept[workers] = Row(f"ours, {workers} worker process{'es' * (workers > 1)}",
                                    "open model, highest rate kept", rate, cpu_us, lag)
            if share < 0.95:
                break
    return kept


def ratio(ours: float, other: Row | str) -> str:
    if isinstance(other, str) or not other.rate:
        return "–"
    return f"{ours / other.rate:.2f}×"


def per_cpu_second(row: Row | str) -> float:
    """Requests one fully busy core would do at this CPU cost: a per-core figure that does
    not depend on how much of CPU 0 the neighbours took during the run."""
    return 1e6 / row.cpu_us if isinstance(row, Row) and row.cpu_us else 0.0


def print_summary(rows: dict[str, Row | str], workers: dict[int, Row] | None) -> None:
    """The one table the issue asks for, then each goal against it."""
    stdlib, uv = (r.rate if isinstance(r, Row) else 0.0 for r in (rows["stdlib"], rows["uvloop"]))
    print("\n| generator (same server, CPU 0 unless said) | load model | req/s | CPU µs / request"
          " | req/s per CPU-second | p99 lag | ours stdlib ÷ this | ours uvloop ÷ this | notes |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    base = (workers or {}).get(1)
    listed: list[tuple[str, Row | str]] = list(rows.items())
    listed += [(f"workers{n}", row) for n, row in sorted((workers or {}).items())]
    for key, row in listed:
        if isinstance(row, str):
            print(f"| {LABELS[key]} | – | – | – | – | – | – | – | {row} |")
            continue
        cpu = f"{row.cpu_us:.1f}" if row.cpu_us is not None else "–"
        lag = f"{row.lag_ms:.1f} ms" if row.lag_ms is not None else "–"
        note, n = row.note, int(key[7:]) if key.startswith("workers") else 0
        if n and base:
            note = (f"unpinned, uvloop when installed; efficiency {row.rate / (n * base.rate):.0%}"
                    f" ({row.rate / base.rate:.2f}× one worker)")
        pair = ("–", "–") if n or key in ("stdlib", "uvloop") else (ratio(stdlib, row),
                                                                   ratio(uv, row))
        print(f"| {row.who} | {row.model} | {row.rate:,.0f} | {cpu} | "
              f"{per_cpu_second(row):,.0f} | {lag} | {pair[0]} | {pair[1]} | {note} |")
    print_goals(rows, workers)


def print_goals(rows: dict[str, Row | str], workers: dict[int, Row] | None) -> None:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    std, uv, locust, wrk = (rows[k] if isinstance(rows[k], Row) else Row("", "", 0.0, None)
                            for k in ("stdlib", "uvloop", "locust", "wrk"))
    assert isinstance(std, Row) and isinstance(uv, Row)
    print(f"\n- per core, p99 lag ≤ 5 ms: stdlib {std.rate:,.0f} req/s (goal ≥ 20,000: "
          f"{verdict(std.rate >= 20000)}), uvloop {uv.rate:,.0f} (goal ≥ 40,000: "
          f"{verdict(uv.rate >= 40000)}); the goal is for a quiet core")
    for name, other in (("Locust FastHttpUser", locust), ("wrk", wrk)):
        if not isinstance(other, Row) or not other.rate:
            continue
        goal = " (goal ≥ 2×)" if name.startswith("Locust") else " (no goal)"
        print(f"- ours vs {name} per core{goal}: by the rate kept (lag ≤ 5 ms) stdlib "
              f"{ratio(std.rate, other)}, uvloop {ratio(uv.rate, other)}; by the rate with lag "
              f"≤ {MAX_LAG_MS:g} ms stdlib {ratio(std.valid_rate, other)}, uvloop "
              f"{ratio(uv.valid_rate, other)}; per CPU-second stdlib "
              f"{per_cpu_second(std) / max(per_cpu_second(other), 1):.2f}×, uvloop "
              f"{per_cpu_second(uv) / max(per_cpu_second(other), 1):.2f}×")
    if workers and 1 in workers and 2 in workers:
        gain = workers[2].rate / workers[1].rate
        spare = (os.cpu_count() or 1) - 1  # the server has one
        judged = verdict(gain >= 1.7) if spare >= 2 else (
            f"not judged: the server takes 1 of {os.cpu_count()} CPUs, so 2 were not free")
        print(f"- 2 workers vs 1 (goal ≥ 1.7× where 2 cores are free): {gain:.2f}× ({judged}; "
              f"load average {os.getloadavg()[0]:.1f})")
    elif workers is not None:
        print("- workers: 1 or 2 workers kept no rate, so no efficiency")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rates", default="5000,10000,15000,20000,30000,40000,50000")
    parser.add_argument("--locust-users", type=int, default=64)
    parser.add_argument("--locust-throughput", type=float, default=0.0,
                        help="requests per second per Locust user (constant_throughput); "
                             "0: as fast as possible")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--worker-rates", default="4000,8000,12000,16000,24000,32000")
    parser.add_argument("--no-workers", action="store_true")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    load_before = os.getloadavg()
    server = Server()
    rows: dict[str, Row | str] = {}
    workers: dict[int, Row] | None = None  # None: not measured (--no-workers)
    try:
        print(f"## Traffic generators side by side ({os.cpu_count()} CPUs; server pinned to CPU "
              f"{cpus()[-1]}, each single-core generator alone on CPU {cpus()[0]}; "
              f"{args.seconds:g} s per measurement)\n")
        print("wrk ...", file=sys.stderr)
        rows["wrk"] = run_wrk(server, args.seconds)
        print("Locust ...", file=sys.stderr)
        rows["locust"] = run_locust(server, args.seconds, args.locust_users,
                                    args.locust_throughput)
        print("| loop | target req/s | achieved req/s | errors | p50 | p99 | p99 lag | "
              "CPU µs / request | kept |\n|---|---:|---:|---:|---:|---:|---:|---:|---|")
        rows["stdlib"] = sweep_ours(server.port, rates, args.seconds, "asyncio")
        rows["uvloop"] = sweep_ours(server.port, rates, args.seconds, "uvloop")
        if not args.no_workers:
            print("\n| workers | rate | answered | p99 lag | CPU µs / request | kept |\n"
                  "|---:|---:|---:|---:|---:|---|")
            workers = sweep_workers(server.port, [int(w) for w in args.workers.split(",")],
                                    [float(r) for r in args.worker_rates.split(",")],
                                    args.seconds)
    finally:
        server.close()
    print_summary(rows, workers)
    load_after = os.getloadavg()
    print(f"\nLoad average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
          f"after: {', '.join(f'{x:.2f}' for x in load_after)}.")


if __name__ == "__main__":
    main()
