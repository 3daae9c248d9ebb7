"""No network fault outlives a runner killed with SIGKILL.

Kernel faults: the watchdog restores the namespaces exactly — `tc qdisc show` and `nft list
ruleset` equal their snapshots — whether the runner dies during the hold or at a step of the
injection protocol (failpoints). Proxy faults: a running `chaos proxy` loses the runner's toxics
(measured by a client and by the proxy's own list), and a proxy started for the fault dies with
the runner.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.adapters.local.proxy_control import read_locator, request
from tests.conftest import ROOT, chaos_cmd, free_port, run_chaos, status_injections, wait_until
from tests.support.cli_process import start_runner
from tests.support.netns_traffic import (
    experiment,
    has_table,
    iptables_state,
    kernel_state,
    shaped,
)

BUDGET = 5.0  # the watchdog notices missing heartbeats, then reverts


def nothing_open() -> bool:
    result = run_chaos("status", "--json", timeout=30)
    return result.returncode == 0 and status_injections(result) == []


KERNEL_FAULTS = {
    "tbf": ("network.bandwidth", "", "{rate: 128KiB}"),
    "nft-partition": ("network.partition", ", port: 8001, protocol: tcp", "{}"),
    "nft-loss": ("network.loss", ", direction: ingress", "{percent: 50%}"),
    "iptables-partition": ("network.partition", ", port: 8001", "{}"),
}


@pytest.mark.needs("ip", "tc", "nft", "iptables")
@pytest.mark.parametrize("kind", list(KERNEL_FAULTS))
def test_watchdog_restores_tc_and_nft_when_runner_is_killed_during_the_hold(
    tmp_path: Path, state_dir: Path, netns_pair: dict[str, str], kind: str,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = netns_pair
    fault_type, filters, params = KERNEL_FAULTS[kind]
    state = lambda: kernel_state(pair)
    if kind.startswith("iptables"):  # the fallback for hosts without nft
        monkeypatch.setenv("CHAOS_FIREWALL", "iptables")
        # iptables-nft keeps the empty base chains it creates: compare what iptables shows
        state = lambda: iptables_state(pair["b"]) + iptables_state(pair["a"])
    before = state()
    path = experiment(tmp_path, fault_type,
                      f"{{netns: {{name: {pair['b']}, device: {pair['dev_b']}{filters}}}}}",
                      params)
    runner = start_runner(path)
    try:
        injected = (lambda: shaped(pair["b"], pair["dev_b"])) if kind == "tbf" else (
            lambda: "CHAOS-" in iptables_state(pair["b"])) if kind.startswith("iptables") else (
            lambda: has_table(pair["b"]))
        assert wait_until(injected, 20, 0.05) is not None, path.with_suffix(".log").read_text()
        runner.kill()
        runner.wait(5)
        assert wait_until(lambda: state() == before, BUDGET, 0.1) is not None, state()
        assert wait_until(nothing_open, 15, 0.2) is not None
    finally:
        runner.close()


@pytest.mark.needs("ip", "tc", "nft")
@pytest.mark.parametrize("point", ["after_intent", "after_inject", "after_applied"])
@pytest.mark.parametrize("kind", ["tbf", "nft-partition"])
def test_watchdog_restores_the_kernel_from_every_step_of_the_protocol(
    tmp_path: Path, state_dir: Path, netns_pair: dict[str, str], kind: str, point: str
) -> None:
    pair = netns_pair
    fault_type, filters, params = KERNEL_FAULTS[kind]
    before = kernel_state(pair)
    runner = start_runner(experiment(
        tmp_path, fault_type, f"{{netns: {{name: {pair['b']}, device: {pair['dev_b']}"
        f"{filters}}}}}", params), failpoints=point)
    try:
        assert runner.wait(30) == -signal.SIGKILL, "the failpoint did not fire"
        assert wait_until(lambda: kernel_state(pair) == before, BUDGET, 0.1) is not None, (
            kernel_state(pair))
        assert wait_until(nothing_open, 15, 0.2) is not None
    finally:
        runner.close()


@pytest.fixture
def echo_port() -> Iterator[int]:
    port = free_port()
    code = ("import socket, threading, sys\n"
            "def serve(c):\n"
            "    while (d := c.recv(1024)):\n"
            "        c.sendall(d)\n"
            "s = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n"
            "while True:\n"
            "    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)])
    try:
        assert wait_until(lambda: _listening(port), 10) is not None
        yield port
    finally:
        proc.kill()
        proc.wait(5)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def rtt_ms(port: int) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        start = time.perf_counter()
        sock.sendall(b"ping")
        assert sock.recv(16) == b"ping"
        return (time.perf_counter() - start) * 1000


def proxy_experiment(tmp_path: Path, listen: int, upstream: int) -> Path:
    path = tmp_path / "proxy.yaml"
    path.write_text(f"""title: slow through the proxy
faults:
  - type: network.latency
    target: {{proxy: {{listen: 127.0.0.1:{listen}, upstream: 127.0.0.1:{upstream}}}}}
    with: {{delay: 200ms}}
    duration: 60s
""")
    return path


@pytest.mark.parametrize("point", ["", "after_inject", "after_applied"])
def test_watchdog_removes_the_runners_toxics_from_a_running_proxy(
    tmp_path: Path, state_dir: Path, echo_port: int, point: str
) -> None:
    listen = free_port()
    proxy = subprocess.Popen(chaos_cmd("proxy", "-q", "--listen", f"127.0.0.1:{listen}",
                                       "--upstream", f"127.0.0.1:{echo_port}"), cwd=ROOT)
    runner = None
    try:
        assert wait_until(lambda: read_locator(f"127.0.0.1:{listen}"), 10) is not None
        control = str(read_locator(f"127.0.0.1:{listen}")["control"])  # type: ignore[index]
        runner = start_runner(proxy_experiment(tmp_path, listen, echo_port), failpoints=point)
        if point:
            assert runner.wait(30) == -signal.SIGKILL, "the failpoint did not fire"
        else:
            assert wait_until(lambda: rtt_ms(listen) > 150, 20, 0.1) is not None
            runner.kill()
            runner.wait(5)
        took = wait_until(lambda: not asyncio.run(request(control, {"op": "list"}))["toxics"],
                          BUDGET, 0.1)
        assert took is not None, "the proxy still carries the runner's toxic"
        assert rtt_ms(listen) < 50, "traffic through the proxy is clean again"
        assert proxy.poll() is None, "the proxy itself keeps running"
        assert wait_until(nothing_open, 15, 0.2) is not None
    finally:
        if runner is not None:
            runner.close()
        proxy.kill()
        proxy.wait(5)


def test_a_proxy_started_for_the_fault_dies_with_the_runner(
    tmp_path: Path, state_dir: Path, echo_port: int
) -> None:
    listen = free_port()
    runner = start_runner(proxy_experiment(tmp_path, listen, echo_port))
    try:
        assert wait_until(lambda: _listening(listen) and rtt_ms(listen) > 150, 20, 0.1)
        runner.kill()
        runner.wait(5)
        assert wait_until(lambda: not _listening(listen), BUDGET, 0.1) is not None
        took = wait_until(nothing_open, 20, 0.2)
        assert took is not None, "the watchdog did not close the ledger entry"
        print(f"ledger closed {took:.2f}s after the proxy stopped listening")
        assert rtt_ms(echo_port) < 50
    finally:
        runner.close()
