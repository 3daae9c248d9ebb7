"""Traffic across a veth pair between two network namespaces, measured from outside chaos: the
servers (TCP and UDP echo) in namespace b, the clients (download, UDP burst, connect) run in
namespace a as scripts, and the kernel state (qdiscs, nftables, iptables) that every kernel
fault must leave as it found it. The `servers` fixture needs conftest's `netns_pair`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_until

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


def shaped(ns: str, dev: str) -> bool:
    out = subprocess.run(["tc", "-n", ns, "qdisc", "show", "dev", dev], capture_output=True,
                         text=True, timeout=10, check=False).stdout
    return "ca05:" in out


def has_table(ns: str) -> bool:
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "tables"],
                         capture_output=True, text=True, timeout=10, check=False).stdout
    return "chaos_" in out


def iptables_state(ns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "iptables", "-S"], capture_output=True,
                          text=True, timeout=10, check=True).stdout
