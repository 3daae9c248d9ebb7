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

from tests.conftest import wait_until

AGENT = [sys.executable, "-m", "chaos.adapters.kubernetes.inpod_agent"]
PORT = 8080
pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
              pytest.mark.needs("ip", "nft")]
CLIENT = r"""
import collections, http.client, json, sys
host, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
seen = collections.Counter()
for _ in range(n):
    conn = http.client.HTTPConnection(host, port, timeout=20)
    try:
        conn.request("GET", path)
        seen[str(conn.getresponse().status)] += 1
    except OSError as exc:
        seen[type(exc).__name__] += 1
    finally:
        conn.close()
print(json.dumps(seen))
"""


def statuses(pair: dict[str, str], n: int, path: str = "/") -> dict[str, int]:
    """What an independent client in namespace a gets for n requests to the app in b."""
    done = subprocess.run(["ip", "netns", "exec", pair["a"], sys.executable, "-c", CLIENT,
                           pair["ip_b"], str(PORT), path, str(n)],
                          capture_output=True, text=True, timeout=300, check=True)
    return dict(json.loads(done.stdout))


def ruleset(ns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"],
                          capture_output=True, text=True, timeout=10, check=True).stdout


@pytest.fixture
def app(netns_pair: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """An HTTP server on 0.0.0.0:8080 in namespace b (the pod's application)."""
    (tmp_path / "pay").write_text("paid")
    server = subprocess.Popen(["ip", "netns", "exec", netns_pair["b"], sys.executable, "-m",
                               "http.server", str(PORT), "--bind", "0.0.0.0"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: statuses(netns_pair, 1).get("200"), 60, every=0.3) is not None
        yield netns_pair
    finally:
        server.kill()
        server.wait(10)


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
    agent = Agent(app["b"], tmp_path, {"status": 503, "percent": p, "path_prefix": "/pay"}, 300)
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
