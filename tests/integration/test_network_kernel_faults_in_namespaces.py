"""Kernel network faults (tc tbf, nftables) inside network namespaces the tests create.

Two namespaces joined by a veth pair; servers run in one, independent clients in the other, and
the effect is measured across the veth. Every test compares `tc qdisc show` and `nft list
ruleset` in the namespaces with their snapshots after the revert. netem is absent from some
kernels (this one): its measured test skips with that reason, and the refusal is tested instead.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from chaos.adapters.local.kernel import netem_available
from tests.conftest import run_chaos, wait_until
from tests.support.cli_process import ChaosProcess
from tests.support.netns_traffic import (
    CONNECT,
    DOWNLOAD,
    UDP_CLIENT,
    UDP_SERVER,
    Z_9999,
    experiment,
    has_table,
    in_ns,
    iptables_state,
    kernel_state,
    servers,
    shaped,
)

__all__ = ["servers"]  # the fixture: TCP/UDP servers in namespace b

pytestmark = pytest.mark.needs("ip", "tc", "nft")


class Runner(ChaosProcess):
    """`chaos run -q PATH`, with a wait for the fault to show in the kernel and a clean stop."""

    def __init__(self, path: Path) -> None:
        super().__init__("run", "-q", str(path), log=path.with_suffix(".log"))

    def wait_injected(self, ready: Callable[[], bool]) -> None:
        assert wait_until(ready, 20, 0.05) is not None, self.log.read_text()

    def stop(self) -> int:
        self.proc.send_signal(2)
        code = self.proc.wait(30)
        return code


def test_tbf_bandwidth_within_ten_percent_across_the_veth(
    tmp_path: Path, state_dir: Path, servers: dict[str, str]
) -> None:
    pair, rate = servers, 256 * 1024
    before = kernel_state(pair)
    clean = in_ns(pair["a"], DOWNLOAD, pair["ip_b"], "8001", str(4 * rate))
    assert float(clean["rate"]) > 4 * rate  # type: ignore[arg-type]
    runner = Runner(experiment(tmp_path, "network.bandwidth",
                               f"{{netns: {{name: {pair['b']}, device: {pair['dev_b']}}}}}",
                               "{rate: 256KiB}"))
    try:
        runner.wait_injected(lambda: shaped(pair["b"], pair["dev_b"]))
        rates = [float(in_ns(pair["a"], DOWNLOAD, pair["ip_b"], "8001",  # type: ignore[arg-type]
                             str(3 * rate // 2))["rate"]) for _ in range(3)]
        measured = sorted(rates)[1]
        assert abs(measured - rate) <= 0.10 * rate, f"{measured:.0f} B/s for {rate} B/s: {rates}"
        assert runner.stop() == 130
    finally:
        runner.close()
    assert kernel_state(pair) == before


def test_nft_loss_rate_inside_the_binomial_interval(
    tmp_path: Path, state_dir: Path, servers: dict[str, str]
) -> None:
    pair, n, p = servers, 2000, 0.3
    before = kernel_state(pair)
    runner = Runner(experiment(
        tmp_path, "network.loss", f"{{netns: {{name: {pair['b']}, device: {pair['dev_b']}, "
        "port: 9001, protocol: udp, direction: ingress}}", "{percent: 30%}"))
    try:
        runner.wait_injected(lambda: has_table(pair["b"]))
        received = int(in_ns(pair["a"], UDP_CLIENT, pair["ip_b"], "9001",  # type: ignore[arg-type]
                             str(n))["received"])
        half_width = Z_9999 * math.sqrt(n * p * (1 - p))
        assert abs((n - received) - n * p) <= half_width, f"{n - received}/{n} lost"
        assert runner.stop() == 130
    finally:
        runner.close()
    assert kernel_state(pair) == before
    after = int(in_ns(pair["a"], UDP_CLIENT, pair["ip_b"], "9001", str(n))["received"])  # type: ignore[arg-type]
    assert after >= n - 5


def test_nft_partition_blocks_exactly_the_selected_port(
    tmp_path: Path, state_dir: Path, servers: dict[str, str]
) -> None:
    pair = servers
    before = kernel_state(pair)
    runner = Runner(experiment(
        tmp_path, "network.partition",
        f"{{netns: {{name: {pair['b']}, device: {pair['dev_b']}, port: 8001, protocol: tcp}}}}"))
    try:
        runner.wait_injected(lambda: has_table(pair["b"]))
        seen = in_ns(pair["a"], CONNECT, pair["ip_b"], "8001", "8002")
        assert seen == {"8001": "TimeoutError", "8002": "open"}
        udp = in_ns(pair["a"], UDP_CLIENT, pair["ip_b"], "9001", "20")
        assert udp == {"received": 20}, "UDP is not the selected protocol: it must pass"
        assert runner.stop() == 130
    finally:
        runner.close()
    assert kernel_state(pair) == before
    assert in_ns(pair["a"], CONNECT, pair["ip_b"], "8001") == {"8001": "open"}


def test_host_filter_partitions_one_peer_only(
    tmp_path: Path, state_dir: Path, servers: dict[str, str]
) -> None:
    pair = servers
    runner = Runner(experiment(
        tmp_path, "network.partition",
        f"{{netns: {{name: {pair['b']}, device: {pair['dev_b']}, host: 192.168.77.7}}}}"))
    try:
        runner.wait_injected(lambda: has_table(pair["b"]))
        assert in_ns(pair["a"], CONNECT, pair["ip_b"], "8001") == {"8001": "open"}
        runner.stop()
    finally:
        runner.close()
    runner = Runner(experiment(
        tmp_path, "network.partition",
        f"{{netns: {{name: {pair['b']}, device: {pair['dev_b']}, host: {pair['ip_a']}}}}}"))
    try:
        runner.wait_injected(lambda: has_table(pair["b"]))
        assert in_ns(pair["a"], CONNECT, pair["ip_b"], "8001") == {"8001": "TimeoutError"}
        runner.stop()
    finally:
        runner.close()


@pytest.mark.skipif(not netem_available(), reason="this kernel has no sch_netem (tc netem): "
                    "netem faults are refused here; the proxy adapter covers latency")
def test_netem_latency_median_across_the_veth(
    tmp_path: Path, state_dir: Path, servers: dict[str, str]
) -> None:
    pair = servers
    before = kernel_state(pair)
    runner = Runner(experiment(tmp_path, "network.latency",
                               f"{{netns: {{name: {pair['b']}, device: {pair['dev_b']}}}}}",
                               "{delay: 20ms}"))
    try:
        runner.wait_injected(lambda: shaped(pair["b"], pair["dev_b"]))
        start = time.perf_counter()
        in_ns(pair["a"], CONNECT, pair["ip_b"], "8001")
        assert time.perf_counter() - start >= 0.02
        assert runner.stop() == 130
    finally:
        runner.close()
    assert kernel_state(pair) == before


@pytest.mark.skipif(netem_available(), reason="netem exists here: the refusal is not reachable")
def test_netem_faults_are_refused_with_a_pointer_to_the_proxy(
    tmp_path: Path, state_dir: Path, netns_pair: dict[str, str]
) -> None:
    before = kernel_state(netns_pair)
    result = run_chaos("run", str(experiment(
        tmp_path, "network.latency",
        f"{{netns: {{name: {netns_pair['b']}, device: {netns_pair['dev_b']}}}}}",
        "{delay: 20ms}")))
    text = result.stdout + result.stderr
    assert result.returncode == 2, text
    assert "sch_netem" in text and "proxy" in text and "Traceback" not in text
    assert kernel_state(netns_pair) == before


def test_bad_kernel_targets_exit_2_and_touch_nothing(
    tmp_path: Path, state_dir: Path, netns_pair: dict[str, str]
) -> None:
    pair = netns_pair
    subprocess.run(["tc", "-n", pair["a"], "qdisc", "add", "dev", pair["dev_a"], "root",
                    "handle", "1:", "htb"], check=True, timeout=10)
    before = kernel_state(pair)
    cases = {
        f"{{netns: {{name: nope-{pair['a']}, device: x}}}}": "no network namespace",
        f"{{netns: {{name: {pair['a']}, device: nodev0}}}}": "no network device",
        f"{{netns: {{name: {pair['a']}, device: {pair['dev_a']}}}}}": "did not create",
        f"{{netns: {{name: {pair['b']}, device: {pair['dev_b']}, port: 80}}}}": "cannot filter",
    }
    for target, message in cases.items():
        result = run_chaos("run", str(experiment(tmp_path, "network.bandwidth", target,
                                                 "{rate: 1MiB}", "2s")))
        text = result.stdout + result.stderr
        assert result.returncode == 2 and message in text and "Traceback" not in text, text
    assert kernel_state(pair) == before


@pytest.mark.needs("iptables")
def test_iptables_fallback_partitions_one_port_and_drops_a_share_of_packets(
    tmp_path: Path, state_dir: Path, servers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hosts without nft: chains CHAOS-<id>-I/-O with the statistic match (CHAOS_FIREWALL
    chooses the backend here; the default picks iptables only when nft is missing)."""
    pair = servers
    monkeypatch.setenv("CHAOS_FIREWALL", "iptables")
    before = iptables_state(pair["b"])
    target = f"{{netns: {{name: {pair['b']}, device: {pair['dev_b']}"
    runner = Runner(experiment(tmp_path, "network.partition",
                               target + ", port: 8001, protocol: tcp}}"))
    try:
        runner.wait_injected(lambda: "CHAOS-" in iptables_state(pair["b"]))
        assert in_ns(pair["a"], CONNECT, pair["ip_b"], "8001", "8002") == {
            "8001": "TimeoutError", "8002": "open"}
        assert runner.stop() == 130
    finally:
        runner.close()
    assert iptables_state(pair["b"]) == before
    n, p = 2000, 0.3
    runner = Runner(experiment(tmp_path, "network.loss", target + ", port: 9001, protocol: "
                               "udp, direction: ingress}}", "{percent: 30%}"))
    try:
        runner.wait_injected(lambda: "CHAOS-" in iptables_state(pair["b"]))
        received = int(in_ns(pair["a"], UDP_CLIENT, pair["ip_b"], "9001",  # type: ignore[arg-type]
                             str(n))["received"])
        assert abs((n - received) - n * p) <= Z_9999 * math.sqrt(n * p * (1 - p))
        assert runner.stop() == 130
    finally:
        runner.close()
    assert iptables_state(pair["b"]) == before


def test_dns_failure_drops_port_53_and_nothing_else(
    tmp_path: Path, state_dir: Path, servers: dict[str, str]
) -> None:
    pair = servers
    before = kernel_state(pair)
    dns = subprocess.Popen(["ip", "netns", "exec", pair["a"], sys.executable, "-c", UDP_SERVER,
                            pair["ip_a"], "53"])
    try:
        def answers(port: str) -> int:
            return int(in_ns(pair["b"], UDP_CLIENT, pair["ip_a"], port,  # type: ignore[arg-type]
                             "20")["received"])

        assert wait_until(lambda: answers("53") == 20, 10) is not None
        runner = Runner(experiment(tmp_path, "network.dns", f"{{netns: {{name: {pair['b']}, "
                                   f"device: {pair['dev_b']}, direction: ingress}}}}"))
        try:
            runner.wait_injected(lambda: has_table(pair["b"]))
            assert answers("53") == 0
            assert in_ns(pair["a"], UDP_CLIENT, pair["ip_b"], "9001", "20") == {"received": 20}
            assert runner.stop() == 130
        finally:
            runner.close()
        assert answers("53") == 20
    finally:
        dns.kill()
        dns.wait(5)
    assert kernel_state(pair) == before
