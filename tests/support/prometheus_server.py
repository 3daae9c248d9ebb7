"""Debian's Prometheus binary, started for a test: scraping the given jobs every second."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.conftest import free_port

BINARY = shutil.which("prometheus")
MISSING = ("the prometheus binary is not installed (Debian: apt-get install -y prometheus; "
           ".ci/run installs it)")


def query(url: str, promql: str) -> list[dict[str, Any]]:
    """An instant query's result list."""
    params = urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(f"{url}/api/v1/query?{params}", timeout=5) as answer:
        return json.load(answer)["data"]["result"]  # type: ignore[no-any-return]


def wait_for(url: str, promql: str, done: Any, what: str, timeout: float = 60) -> None:
    """Poll `promql` until `done(result)`; fail saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, KeyError, ValueError):
            if done(query(url, promql)):
                return
        time.sleep(0.2)
    raise AssertionError(f"Prometheus: {what} within {timeout:g} s")


@contextlib.contextmanager
def prometheus(tmp: Path, jobs: Mapping[str, list[int]]) -> Iterator[str]:
    """Its URL, once every target of `jobs` (job name -> loopback ports) was scraped twice."""
    assert BINARY is not None, MISSING
    configs = "".join(f"""
  - job_name: {name}
    static_configs: [{{targets: [{", ".join(f'"127.0.0.1:{p}"' for p in ports)}]}}]"""
                      for name, ports in jobs.items())
    (tmp / "prometheus.yml").write_text(
        f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:{configs}\n")
    web = free_port()
    proc = subprocess.Popen([BINARY, f"--config.file={tmp}/prometheus.yml",
                             f"--storage.tsdb.path={tmp}/data",
                             f"--web.listen-address=127.0.0.1:{web}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{web}"
    try:
        targets = sum(len(p) for p in jobs.values())
        wait_for(url, "sum_over_time(up[1m]) >= 2",
                 lambda result: len(result) == targets, "not every target was scraped twice")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
