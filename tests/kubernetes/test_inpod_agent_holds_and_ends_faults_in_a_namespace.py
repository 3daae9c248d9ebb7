"""The in-pod agent for real, in network namespaces the tests create (a "pod" = namespace b).

The agent runs with `ip netns exec` exactly as an ephemeral container runs it in a pod's network
namespace: it shapes with tbf and drops with nftables, observed from outside (`tc qdisc show`,
`nft list ruleset`, a client in namespace a); it removes its rules at its deadline with nobody's
help, on a stop message over the abstract socket from another process of the same namespace,
and on SIGTERM; `stop` also removes what an agent killed with SIGKILL left behind; the qdisc and
ruleset equal their snapshots afterwards. netem is absent from this kernel: latency and
corruption are refused with the proxy as the way out (their real test skips with that reason).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from chaos.adapters.local.kernel import netem_available
from tests.conftest import wait_until
from tests.support.netns_traffic import (
    CONNECT,
    DOWNLOAD,
    UDP_CLIENT,
    has_table,
    in_ns,
    kernel_state,
    servers,  # noqa: F401 - the fixture: TCP/UDP servers in namespace b
    shaped,
)

AGENT = [sys.executable, "-m", "chaos.adapters.kubernetes.inpod_agent"]
pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
              pytest.mark.needs("ip", "tc", "nft")]


class Agent:
    """One agent process in a namespace, with its termination log."""

    def __init__(self, ns: str, tmp: Path, command: str, fault: str, target: dict[str, Any],
                 params: dict[str, Any], seconds: float, injection_id: str = "") -> None:
        self.id = injection_id or os.urandom(6).hex()
        self.report = tmp / f"{command}-{self.id}-{time.monotonic_ns()}.log"
        self.argv = ["ip", "netns", "exec", ns, *AGENT, "--report", str(self.report), command,
                     "--id", self.id, "--deadline", f"{time.time() + seconds:.3f}",
                     "--max-for", f"{seconds + 5:g}", "--fault", fault,
                     "--target", json.dumps(target), "--with", json.dumps(params)]
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, text=True)

    def close(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def ready(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        code = self.proc.wait(timeout)
        self.close()
        return code, self.report.read_text() if self.report.exists() else ""

    def stop_from_elsewhere(self, ns: str, tmp: Path) -> tuple[int, str]:
        """`stop` with the same arguments, from a second process in the namespace."""
        argv = list(self.argv)
        argv[argv.index("hold")] = "stop"
        report = tmp / f"stop-{self.id}.log"
        argv[argv.index("--report") + 1] = str(report)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        return done.returncode, report.read_text() if report.exists() else done.stdout


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    started: list[Agent] = []
    yield started
    for agent in started:
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait(10)
        agent.close()


def test_bandwidth_is_shaped_and_removed_at_the_deadline_by_the_agent_alone(
    tmp_path: Path, servers: dict[str, str], agents: list[Agent]  # noqa: F811
) -> None:
    pair, rate = servers, 128 * 1024
    before = kernel_state(pair)
    clean = float(in_ns(pair["a"], DOWNLOAD, pair["ip_b"], "8001", str(4 * rate))["rate"])  # type: ignore[arg-type]
    agent = Agent(pair["b"], tmp_path, "hold", "network.bandwidth", {"device": pair["dev_b"]},
                  {"rate": rate}, seconds=6)
    agents.append(agent)
    assert agent.ready().startswith("ready: network.bandwidth"), agent.finish()
    assert shaped(pair["b"], pair["dev_b"])
    shown = subprocess.run(["tc", "-n", pair["b"], "qdisc", "show", "dev", pair["dev_b"]],
                           capture_output=True, text=True, timeout=10, check=True).stdout
    assert "tbf ca05: root" in shown and "rate 1048Kbit" in shown, shown
    limited = float(in_ns(pair["a"], DOWNLOAD, pair["ip_b"], "8001", str(rate))["rate"])  # type: ignore[arg-type]
    assert limited < 2 * rate < clean, (limited, clean)
    code, report = agent.finish()  # nobody stops it: the deadline does
    assert (code, report) == (0, "reverted (deadline): reverted")
    assert kernel_state(pair) == before


def test_loss_rules_end_on_a_stop_message_from_another_process_in_the_namespace(
    tmp_path: Path, servers: dict[str, str], agents: list[Agent]  # noqa: F811
) -> None:
    pair, n = servers, 1000
    before = kernel_state(pair)
    agent = Agent(pair["b"], tmp_path, "hold", "network.loss",
                  {"device": pair["dev_b"], "port": 9001, "protocol": "udp",
                   "direction": "ingress"}, {"percent": 0.5}, seconds=120)
    agents.append(agent)
    assert agent.ready().startswith("ready: network.loss")
    ruleset = subprocess.run(["ip", "netns", "exec", pair["b"], "nft", "list", "ruleset"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    assert f"table inet chaos_{agent.id}" in ruleset and "mod 10000 < 5000" in ruleset
    received = int(in_ns(pair["a"], UDP_CLIENT, pair["ip_b"], "9001", str(n))["received"])  # type: ignore[arg-type]
    assert 0.3 * n < received < 0.7 * n, f"{received}/{n} arrived with 50% loss"
    code, said = agent.stop_from_elsewhere(pair["b"], tmp_path)
    assert code == 0 and said.startswith("stopped: agent: reverted (stopped): reverted"), said
    assert agent.finish() == (0, "reverted (stopped): reverted")
    assert kernel_state(pair) == before
    assert int(in_ns(pair["a"], UDP_CLIENT, pair["ip_b"], "9001", "50")["received"]) >= 45  # type: ignore[arg-type]


def test_stop_removes_what_a_killed_agent_left_behind(
    tmp_path: Path, servers: dict[str, str], agents: list[Agent]  # noqa: F811
) -> None:
    pair = servers
    before = kernel_state(pair)
    agent = Agent(pair["b"], tmp_path, "hold", "network.loss",
                  {"device": pair["dev_b"], "port": 8001, "protocol": "tcp"},
                  {"percent": 1.0}, seconds=120)
    agents.append(agent)
    assert agent.ready().startswith("ready")
    for proc in psutil.Process(agent.proc.pid).children(recursive=True):
        proc.kill()  # `ip netns exec` execs, but be sure the agent itself dies
    agent.proc.kill()
    agent.proc.wait(10)
    agent.close()
    assert has_table(pair["b"]), "SIGKILL gives the agent no chance to revert"
    assert in_ns(pair["a"], CONNECT, pair["ip_b"], "8001") == {"8001": "TimeoutError"}
    code, said = agent.stop_from_elsewhere(pair["b"], tmp_path)
    assert code == 0 and said == "stopped: agent: no agent was running; leftovers: reverted"
    assert kernel_state(pair) == before
    assert in_ns(pair["a"], CONNECT, pair["ip_b"], "8001") == {"8001": "open"}


def test_sigterm_from_pod_deletion_reverts_and_a_second_stop_finds_nothing(
    tmp_path: Path, netns_pair: dict[str, str], agents: list[Agent]
) -> None:
    pair = netns_pair
    before = kernel_state(pair)
    agent = Agent(pair["b"], tmp_path, "hold", "network.bandwidth", {"device": pair["dev_b"]},
                  {"rate": 1 << 20}, seconds=120)
    agents.append(agent)
    assert agent.ready().startswith("ready")
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.finish() == (0, "reverted (signalled): reverted")
    assert kernel_state(pair) == before
    code, said = agent.stop_from_elsewhere(pair["b"], tmp_path)
    assert (code, said) == (0, "stopped: agent: no agent was running; leftovers: gone")


def test_a_second_agent_with_the_same_id_is_refused_before_touching_anything(
    tmp_path: Path, netns_pair: dict[str, str], agents: list[Agent]
) -> None:
    pair = netns_pair
    first = Agent(pair["b"], tmp_path, "hold", "network.loss", {"device": pair["dev_b"]},
                  {"percent": 0.1}, seconds=120)
    agents.append(first)
    assert first.ready().startswith("ready")
    state = kernel_state(pair)
    second = Agent(pair["b"], tmp_path, "hold", "network.bandwidth", {"device": pair["dev_b"]},
                   {"rate": 1 << 20}, seconds=120, injection_id=first.id)
    agents.append(second)
    code, report = second.finish()
    assert code == 4 and "already holds injection" in report, report
    assert kernel_state(pair) == state
    assert first.stop_from_elsewhere(pair["b"], tmp_path)[0] == 0


@pytest.mark.parametrize("fault, params", [("network.latency", {"delay": 0.1, "jitter": 0.01}),
                                           ("network.corruption", {"percent": 0.05})])
@pytest.mark.skipif(netem_available(), reason="netem exists here: the refusal is not reachable")
def test_netem_faults_fail_clearly_without_netem_and_touch_nothing(
    tmp_path: Path, netns_pair: dict[str, str], agents: list[Agent], fault: str,
    params: dict[str, Any]
) -> None:
    before = kernel_state(netns_pair)
    agent = Agent(netns_pair["b"], tmp_path, "hold", fault, {"device": netns_pair["dev_b"]},
                  params, seconds=60)
    agents.append(agent)
    code, report = agent.finish()
    assert code == 2, report
    assert "sch_netem" in report and "proxy" in report and "Traceback" not in report
    assert kernel_state(netns_pair) == before


@pytest.mark.skipif(not netem_available(), reason="this kernel has no sch_netem (tc netem): the "
                    "agent refuses latency/corruption here; the proxy adapter covers latency")
def test_latency_is_applied_with_netem_and_removed(
    tmp_path: Path, servers: dict[str, str], agents: list[Agent]  # noqa: F811
) -> None:
    pair = servers
    before = kernel_state(pair)
    agent = Agent(pair["b"], tmp_path, "hold", "network.latency", {"device": pair["dev_b"]},
                  {"delay": 0.05}, seconds=120)
    agents.append(agent)
    assert agent.ready().startswith("ready")
    start = time.perf_counter()
    in_ns(pair["a"], CONNECT, pair["ip_b"], "8001")
    assert time.perf_counter() - start >= 0.05
    assert agent.stop_from_elsewhere(pair["b"], tmp_path)[0] == 0
    assert kernel_state(pair) == before


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def workers_of(agent: Agent) -> list[psutil.Process]:
    return [p for p in psutil.Process(agent.proc.pid).children(recursive=True)
            if "chaos.adapters.local.burner" in " ".join(p.cmdline())]


@pytest.mark.parametrize("ending", ["deadline", "stop"])
def test_cpu_worker_in_the_namespace_burns_and_ends_with_the_agent(
    tmp_path: Path, netns_pair: dict[str, str], agents: list[Agent], ending: str
) -> None:
    agent = Agent(netns_pair["b"], tmp_path, "hold", "resource.cpu", {},
                  {"load": 0.5, "cores": 1, "pin": False, "ramp": 0.0},
                  seconds=4 if ending == "deadline" else 120)
    agents.append(agent)
    assert agent.ready().startswith("ready: resource.cpu")
    workers = workers_of(agent)
    assert len(workers) == 1 and "--load" in workers[0].cmdline()
    ns_inode = os.stat(f"/proc/{workers[0].pid}/ns/net").st_ino
    assert ns_inode == os.stat(f"/run/netns/{netns_pair['b']}").st_ino, "not in the pod's netns"
    used = cpu_seconds(workers)
    assert wait_until(lambda: cpu_seconds(workers) - used >= 0.3, 15) is not None
    if ending == "stop":
        code, said = agent.stop_from_elsewhere(netns_pair["b"], tmp_path)
        assert code == 0 and "agent: reverted (stopped): reverted" in said, said
    code, report = agent.finish()
    assert (code, report) == (0, f"reverted ({'stopped' if ending == 'stop' else 'deadline'}): "
                                 "reverted")
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)


def test_the_agent_and_the_spec_builder_import_no_kubernetes_client() -> None:
    """The agent runs in a slim image with `python -m`; the spec builder runs in validation."""
    code = ("import sys, chaos.adapters.kubernetes.inpod_agent as agent, "
            "chaos.adapters.kubernetes.ephemeral_spec; agent.parser(); "
            "print(sorted(m for m in ('kubernetes', 'urllib3', 'aiohttp') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_memory_worker_holds_its_amount_until_stopped(
    tmp_path: Path, netns_pair: dict[str, str], agents: list[Agent]
) -> None:
    size = 64 << 20
    agent = Agent(netns_pair["b"], tmp_path, "hold", "resource.memory", {},
                  {"amount": {"bytes": size}, "of": "total", "mode": "allocate", "ramp": 0.0,
                   "force": False}, seconds=120)
    agents.append(agent)
    assert agent.ready().startswith("ready: resource.memory")
    [worker] = workers_of(agent)
    assert worker.memory_info().rss >= 0.9 * size
    code, said = agent.stop_from_elsewhere(netns_pair["b"], tmp_path)
    assert code == 0 and "agent: reverted (stopped): reverted" in said, said
    assert agent.finish() == (0, "reverted (stopped): reverted")
    assert not psutil.pid_exists(worker.pid) or worker.status() == psutil.STATUS_ZOMBIE


def test_a_stop_to_an_agent_that_never_answers_is_an_error_not_a_crash() -> None:
    """A hung agent must not keep `stop` from removing the leftovers itself."""
    import asyncio
    import socket

    from chaos.adapters.kubernetes.inpod_agent import ask_to_stop, socket_address

    injection_id = os.urandom(6).hex()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_address(injection_id))
    listener.listen(1)  # accepts (the kernel does), never reads nor answers
    try:
        answer = asyncio.run(ask_to_stop(injection_id, timeout=0.3))
    finally:
        listener.close()

    assert answer is not None and answer.startswith("error:"), answer


def test_a_stop_client_that_goes_away_leaves_the_result_line_saying_reverted(
    tmp_path: Path, netns_pair: dict[str, str], agents: list[Agent]
) -> None:
    """The answer to a client that already hung up fails to send; the revert still happened."""
    agent = Agent(netns_pair["b"], tmp_path, "hold", "resource.memory", {},
                  {"amount": {"bytes": 8 << 20}, "of": "total", "mode": "allocate", "ramp": 0.0,
                   "force": False}, seconds=120)
    agents.append(agent)
    assert agent.ready().startswith("ready: resource.memory")
    [worker] = workers_of(agent)
    hang_up = ("import socket, sys; s = socket.socket(socket.AF_UNIX); "
               "s.connect('\\0chaos-inpod-' + sys.argv[1]); s.sendall(b'stop\\n'); s.close()")
    subprocess.run(["ip", "netns", "exec", netns_pair["b"], sys.executable, "-c", hang_up,
                    agent.id], check=True, timeout=30)
    assert agent.finish() == (0, "reverted (stopped): reverted")
    assert not psutil.pid_exists(worker.pid) or worker.status() == psutil.STATUS_ZOMBIE
