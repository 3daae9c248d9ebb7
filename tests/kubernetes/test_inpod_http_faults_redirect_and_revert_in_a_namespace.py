"""HTTP faults in a "pod" (network namespace b) held by the in-pod agent for real.

A real HTTP server listens on port 8080 in namespace b; a client in namespace a (an independent
process, new connection per request) counts the statuses it gets. The agent runs the HTTP fault
proxy and an nft redirect of port 8080 to it in namespace b; the redirect table is gone at the
deadline with nobody's help, on `stop` from another process, and after SIGKILL of the agent
once `stop` ran (what the stop container of `chaos recover --kubernetes` runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import http_in_netns as http
from tests.support.http_in_netns import PORT, ruleset

AGENT = [sys.executable, "-m", "chaos.adapters.kubernetes.inpod_agent"]
pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
              pytest.mark.needs("ip", "nft")]


def statuses(pair: dict[str, str], n: int, path: str = "/") -> dict[str, int]:
    return http.statuses(pair["a"], pair["ip_b"], n, path)


@pytest.fixture
def app(netns_pair: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """An HTTP server on 0.0.0.0:8080 in namespace b (the pod's application)."""
    with http.serve(netns_pair, tmp_path):
        yield netns_pair


class Agent:
    """`hold` of one HTTP fault in namespace b, and `stop` with the same arguments."""

    def __init__(self, ns: str, tmp: Path, params: dict[str, Any], seconds: float) -> None:
        self.id, self.ns, self.tmp = os.urandom(6).hex(), ns, tmp
        self.report = tmp / f"hold-{self.id}.log"
        self.args = ["--id", self.id, "--deadline", f"{time.time() + seconds:.3f}",
                     "--max-for", f"{seconds + 5:g}", "--fault", "http.abort",
                     "--target", json.dumps({"port": PORT}), "--with", json.dumps(params)]
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, *AGENT, "--report",
                                      str(self.report), "hold", *self.args],
                                     stdout=subprocess.PIPE, text=True)

    def ready(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        code = self.proc.wait(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code, self.report.read_text() if self.report.exists() else ""

    def stop_from_elsewhere(self) -> tuple[int, str]:
        report = self.tmp / f"stop-{self.id}.log"
        done = subprocess.run(["ip", "netns", "exec", self.ns, *AGENT, "--report", str(report),
                               "stop", *self.args], capture_output=True, text=True,
                              timeout=120, check=False)
        return done.returncode, report.read_text() if report.exists() else done.stdout


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    started: list[Agent] = []
    yield started
    for agent in started:
        if agent.proc.poll() is None:
            agent.proc.kill()
        agent.finish()


def test_a_share_of_requests_is_answered_503_until_a_stop_from_another_process(
    tmp_path: Path, app: dict[str, str], agents: list[Agent]
) -> None:
    before, n, p = ruleset(app["b"]), 300, 0.3
    # a fixed seed, as the runner passes one: one request at a time, the draws are the same
    # on every run (the interval is then checked once, not gambled on at each run)
    agent = Agent(app["b"], tmp_path, {"status": 503, "percent": p, "path_prefix": "/pay",
                                       "seed": "inpod-http"}, 300)
    agents.append(agent)
    assert agent.ready().startswith("ready: http.abort"), agent.finish()
    shown = ruleset(app["b"])
    assert f"table ip chaos_{agent.id}" in shown and f"tcp dport {PORT} redirect to :" in shown
    seen = statuses(app, n, "/pay")
    # 99% binomial interval for 300 draws at 30%: 90 +- 2.576 * sqrt(300 * 0.3 * 0.7)
    assert set(seen) <= {"200", "503"} and 70 <= seen.get("503", 0) <= 110, seen
    assert statuses(app, 30, "/") == {"200": 30}, "a path the match leaves alone is untouched"
    code, said = agent.stop_from_elsewhere()
    assert code == 0 and said.startswith("stopped: agent: reverted (stopped): reverted"), said
    assert agent.finish() == (0, "reverted (stopped): reverted")
    assert ruleset(app["b"]) == before
    assert statuses(app, 30, "/pay") == {"200": 30}


def test_the_redirect_and_the_proxy_end_at_the_deadline_with_nobodys_help(
    tmp_path: Path, app: dict[str, str], agents: list[Agent]
) -> None:
    before = ruleset(app["b"])
    agent = Agent(app["b"], tmp_path, {"status": 503}, 20)
    agents.append(agent)
    assert agent.ready().startswith("ready: http.abort"), agent.finish()
    assert statuses(app, 5) == {"503": 5}
    assert agent.finish() == (0, "reverted (deadline): reverted")
    assert ruleset(app["b"]) == before
    assert statuses(app, 5) == {"200": 5}


def test_stop_removes_the_redirect_a_killed_agent_left_behind(
    tmp_path: Path, app: dict[str, str], agents: list[Agent]
) -> None:
    before = ruleset(app["b"])
    agent = Agent(app["b"], tmp_path, {"status": 503}, 300)
    agents.append(agent)
    assert agent.ready().startswith("ready: http.abort"), agent.finish()
    agent.proc.kill()  # `ip netns exec` execs: this is the agent, and its proxy, gone at once
    agent.finish()
    assert f"table ip chaos_{agent.id}" in ruleset(app["b"]), "SIGKILL left the redirect"
    assert "200" not in statuses(app, 3), "the redirect leads to a proxy that is gone"
    code, said = agent.stop_from_elsewhere()
    assert (code, said) == (0, "stopped: agent: no agent was running; leftovers: reverted")
    assert ruleset(app["b"]) == before
    assert statuses(app, 5) == {"200": 5}
