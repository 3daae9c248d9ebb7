"""Kernel network faults (tc tbf, nftables) inside network namespaces the tests create.

Two namespaces joined by a veth pair; servers run in one, independent clients in the other, and
the effect is measured across the veth. Every test compares `tc qdisc show` and `nft list
ruleset` in the namespaces with their snapshots after the revert. netem is absent from some
kernels (this one): its measured test skips with that reason, and the refusal is tested instead.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chaos.adapters.local.kernel import netem_available
from tests.conftest import run_chaos, wait_until

pytestmark = pytest.mark.needs("ip", "tc", "nft")

TCP_SERVER = r"""
import socket, sys, threading
def serve(conn):
    with conn:
        data = conn.recv(100)
        if data.startswith(b"SEND "):
            conn.sendall(b"x" * int(data.split()[1]))
        else:
            conn.sendall(data)
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""
UDP_SERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
# a big receive buffer (FORCE: root may pass rmem_max): a server starved of CPU on a busy machine
# must not drop packets itself, or its drops count as the fault's
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE (not in Python)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    data, peer = s.recvfrom(100)
    s.sendto(data, peer)
"""
DOWNLOAD = r"""
import json, socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
total = int(sys.argv[3])
s.sendall(b"SEND %d" % total)
got, first, first_len = 0, 0.0, 0
while got < total:
    chunk = s.recv(65536)
    if not chunk:
        break
    if not got:
        first, first_len = time.perf_counter(), len(chunk)
    got += len(chunk)
print(json.dumps({"rate": (got - first_len) / (time.perf_counter() - first), "got": got}))
"""
UDP_CLIENT = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: see UDP_SERVER
n = int(sys.argv[3])
for i in range(n):
    s.sendto(b"%d" % i, (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.0005)
s.settimeout(1.0)
seen = set()
try:
    while len(seen) < n:
        seen.add(s.recv(100))
except socket.timeout:
    pass
print(json.dumps({"received": len(seen)}))
"""
CONNECT = r"""
import json, socket, sys
results = {}
for port in sys.argv[2:]:
    try:
        socket.create_connection((sys.argv[1], int(port)), timeout=1.0).close()
        results[port] = "open"
    except OSError as exc:
        results[port] = type(exc).__name__
print(json.dumps(results))
"""

# two-sided 99.99% normal quantile: a correct rate fails 1 run in 10,000, not 1 in 100 (the
# suite has several such tests); a wrong rate (e.g. 25% for 30% over 2,000 packets) still fails
Z_9999 = 3.891


def in_ns(ns: str, code: str, *args: str, timeout: float = 60) -> dict[str, object]:
    result = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
                            capture_output=True, text=True, timeout=timeout, check=True)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def kernel_state(pair: dict[str, str]) -> str:
    """What must be identical before and after a fault: qdiscs and nftables in both namespaces."""
    out = []
    for ns in (pair["a"], pair["b"]):
        for argv in (["tc", "qdisc", "show"], ["nft", "list", "ruleset"]):
            out.append(subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True,
                                      text=True, timeout=10, check=True).stdout)
    # counters are not configuration: htb reports how many packets it passed directly, and an
    # nft `counter` moves whenever a stray packet (IPv6 neighbour discovery, a retransmit) passes
    state = re.sub(r"direct_packets_stat \d+", "", "\n---\n".join(out))
    return re.sub(r"packets \d+ bytes \d+", "packets _ bytes _", state)


@pytest.fixture
def servers(netns_pair: dict[str, str]) -> Iterator[dict[str, str]]:
    """TCP servers on ports 8001 and 8002 and a UDP echo on 9001, inside namespace b."""
    procs = [subprocess.Popen(["ip", "netns", "exec", netns_pair["b"], sys.executable, "-c",
                               code, netns_pair["ip_b"], port])
             for code, port in ((TCP_SERVER, "8001"), (TCP_SERVER, "8002"),
                                (UDP_SERVER, "9001"))]
    try:
        assert wait_until(lambda: in_ns(netns_pair["a"], CONNECT, netns_pair["ip_b"], "8001",
                                        "8002") == {"8001": "open", "8002": "open"}, 15)
        yield netns_pair
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(5)


def experiment(tmp_path: Path, fault_type: str, target: str, params: str = "{}",
               duration: str = "30s") -> Path:
    path = tmp_path / "kernel.yaml"
    path.write_text(f"""title: kernel fault
faults:
  - name: kernel-fault
    type: {fault_type}
    target: {target}
    with: {params}
    duration: {duration}
""")
    return path


class Runner:
    def __init__(self, path: Path) -> None:
        self.log = path.with_suffix(".log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "chaos", "run", "-q", str(path)],
                                         stdout=log, stderr=subprocess.STDOUT)

    def wait_injected(self, ready: Callable[[], bool]) -> None:
        assert wait_until(ready, 20, 0.05) is not None, self.log.read_text()

    def stop(self) -> int:
        self.proc.send_signal(2)
        code = self.proc.wait(30)
        return code


def shaped(ns: str, dev: str) -> bool:
    out = subprocess.run(["tc", "-n", ns, "qdisc", "show", "dev", dev], capture_output=True,
                         text=True, timeout=10, check=False).stdout
    return "ca05:" in out


def has_table(ns: str) -> bool:
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "tables"],
                         capture_output=True, text=True, timeout=10, check=False).stdout
    return "chaos_" in out


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
        runner.proc.kill()
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
        runner.proc.kill()
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
        runner.proc.kill()
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
        runner.proc.kill()
    runner = Runner(experiment(
        tmp_path, "network.partition",
        f"{{netns: {{name: {pair['b']}, device: {pair['dev_b']}, host: {pair['ip_a']}}}}}"))
    try:
        runner.wait_injected(lambda: has_table(pair["b"]))
        assert in_ns(pair["a"], CONNECT, pair["ip_b"], "8001") == {"8001": "TimeoutError"}
        runner.stop()
    finally:
        runner.proc.kill()


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
        runner.proc.kill()
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


def iptables_state(ns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "iptables", "-S"], capture_output=True,
                          text=True, timeout=10, check=True).stdout


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
        runner.proc.kill()
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
        runner.proc.kill()
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
            runner.proc.kill()
        assert answers("53") == 20
    finally:
        dns.kill()
        dns.wait(5)
    assert kernel_state(pair) == before
