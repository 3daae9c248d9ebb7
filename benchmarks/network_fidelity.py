"""Fidelity of network faults: the target each fault is given vs what an independent client
measures, for the fault proxy and (as root) the kernel adapter in network namespaces.

    .venv/bin/python benchmarks/network_fidelity.py [--no-kernel]

Proxy rows: a threaded echo/byte server and a proxy process on 127.0.0.1; toxics are added and
removed over the control channel. Kernel rows: two namespaces joined by a veth pair (10.x
addresses that exist only inside them); each fault is applied by `chaos inject` (the real
path: ledger, watchdog, adapter) and ended with SIGINT; the namespaces are deleted in a
`finally`. netem rows are skipped on kernels without sch_netem.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_overhead import SERVER, percentile

from chaos.adapters.local.kernel import netem_available
from chaos.adapters.local.proxy_control import request

ROWS: list[tuple[str, str, str, str]] = []  # fault, target, measured, note


def rtts(port: int, n: int) -> list[float]:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        out = []
        for _ in range(n):
            start = time.perf_counter()
            sock.sendall(b"0123456789abcdef")
            got = 0
            while got < 16:
                got += len(sock.recv(64))
            out.append((time.perf_counter() - start) * 1000)
        return out


def rate_of(host: str, port: int, total: int) -> float:
    import socket

    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(b"SEND %d" % total)
        got, first, first_len = 0, 0.0, 0
        while got < total:
            chunk = sock.recv(65536)
            if not chunk:
                break
            if not got:
                first, first_len = time.perf_counter(), len(chunk)
            got += len(chunk)
        return (got - first_len) / (time.perf_counter() - first)


def proxy_rows() -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    proxy = None
    with tempfile.TemporaryDirectory() as tmp:
        control = str(Path(tmp) / "c.sock")
        try:
            assert server.stdout is not None
            upstream = int(server.stdout.readline())
            proxy = subprocess.Popen(
                [sys.executable, "-m", "chaos.adapters.local.proxy_control", "--listen",
                 "127.0.0.1:0", "--upstream", f"127.0.0.1:{upstream}", "--control", control],
                stdout=subprocess.PIPE, text=True)
            assert proxy.stdout is not None
            port = int(proxy.stdout.readline().split()[1].rsplit(":", 1)[1])
            _measure_proxy(port, control)
        finally:
            for proc in (proxy, server):
                if proc is not None:
                    proc.kill()
                    proc.wait(5)
                    if proc.stdout is not None:
                        proc.stdout.close()


def _toxic(control: str, kind: str, **params: float) -> str:
    ident = f"{kind}-{uuid.uuid4().hex[:8]}"
    toxicity = params.pop("toxicity", 1.0)
    asyncio.run(request(control, {"op": "add", "toxic": {"id": ident, "kind": kind,
                                                         "toxicity": toxicity,
                                                         "params": params}}))
    return ident


def _untoxic(control: str, ident: str) -> None:
    asyncio.run(request(control, {"op": "remove", "id": ident}))


def _measure_proxy(port: int, control: str) -> None:
    base = statistics.median(rtts(port, 300))
    for delay in (0.005, 0.020, 0.100):
        ident = _toxic(control, "latency", delay=delay)
        got = statistics.median(rtts(port, 100 if delay >= 0.1 else 300)) - base
        _untoxic(control, ident)
        ROWS.append(("proxy latency", f"{delay * 1000:g} ms", f"{got:.2f} ms (median added)",
                     f"error {got - delay * 1000:+.2f} ms"))
    ident = _toxic(control, "latency", delay=0.050, jitter=0.010)
    samples = [s - base for s in rtts(port, 300)]
    _untoxic(control, ident)
    q1, q3 = percentile(samples, .25), percentile(samples, .75)
    ROWS.append(("proxy latency + jitter", "50 ± 10 ms (uniform: IQR 10 ms)",
                 (f"median {statistics.median(samples):.2f}, min {min(samples):.2f}, max "
                  f"{max(samples):.2f}, IQR {q3 - q1:.2f} ms"), "bounds: 40..60 ms"))
    for rate in (256 * 1024, 1024 * 1024, 4 * 1024 * 1024):
        ident = _toxic(control, "bandwidth", rate=rate)
        got = statistics.median(rate_of("127.0.0.1", port, int(rate * 2)) for _ in range(3))
        _untoxic(control, ident)
        ROWS.append(("proxy bandwidth", f"{rate / 1024:g} KiB/s", f"{got / 1024:.0f} KiB/s",
                     f"error {got / rate - 1:+.1%}"))
    ident = _toxic(control, "latency", delay=0.015, toxicity=0.3)
    hit = sum(rtts(port, 1)[0] > 10 for _ in range(500))
    _untoxic(control, ident)
    ROWS.append(("proxy toxicity", "30% of connections", f"{hit / 500:.1%} of 500",
                 "99% binomial interval ±5.3 points"))


def _ns(ns: str, *argv: str, timeout: float = 60) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          timeout=timeout, check=True).stdout


UDP_SERVER = ("import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
              "s.bind((sys.argv[1],9001))\nwhile True:\n d,p=s.recvfrom(100)\n try:\n  s.sendto(d,p)\n"
              " except OSError:\n  pass\n")
UDP_CLIENT = ("import json,socket,sys,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
              "s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,1<<22)\n"
              "n=int(sys.argv[2])\nfor i in range(n):\n s.sendto(b'%d'%i,(sys.argv[1],9001))\n"
              " time.sleep(0.0005)\ns.settimeout(1)\nseen=set()\ntry:\n while len(seen)<n:\n"
              "  seen.add(s.recv(100))\nexcept socket.timeout:\n pass\nprint(len(seen))\n")
TCP_CLIENT = ("import sys\nsys.path.insert(0, sys.argv[4])\nfrom network_fidelity import "
              "rate_of\nprint(rate_of(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))\n")


def kernel_rows() -> None:
    if os.geteuid() != 0:
        ROWS.append(("kernel (tc/nft)", "-", "skipped", "needs root"))
        return
    tag = uuid.uuid4().hex[:6]
    a, b, dev_a, dev_b = f"chaos-{tag}-a", f"chaos-{tag}-b", f"cv{tag}a", f"cv{tag}b"
    ip_a, ip_b = "10.251.7.1", "10.251.7.2"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for argv in (["netns", "add", a], ["netns", "add", b],
                     ["link", "add", dev_a, "netns", a, "type", "veth", "peer", "name", dev_b,
                      "netns", b],
                     ["-n", a, "addr", "add", f"{ip_a}/24", "dev", dev_a],
                     ["-n", b, "addr", "add", f"{ip_b}/24", "dev", dev_b],
                     ["-n", a, "link", "set", dev_a, "up"], ["-n", b, "link", "set", dev_b, "up"]):
            subprocess.run(["ip", *argv], check=True, timeout=10)
        server = SERVER.replace('("127.0.0.1", 0)', f'("{ip_b}", 8001)')
        procs += [subprocess.Popen(["ip", "netns", "exec", b, sys.executable, "-c", server],
                                   stdout=subprocess.DEVNULL),
                  subprocess.Popen(["ip", "netns", "exec", b, sys.executable, "-c", UDP_SERVER,
                                    ip_b])]
        time.sleep(1.0)
        here = str(Path(__file__).resolve().parent)
        for rate in (256 * 1024, 1024 * 1024):
            with _inject("network.bandwidth", b, dev_b, f"--rate={rate // 1024}KiB"):
                got = statistics.median(float(_ns(a, sys.executable, "-c", TCP_CLIENT, ip_b,
                                                  "8001", str(rate * 2), here))
                                        for _ in range(3))
            ROWS.append(("kernel tbf bandwidth", f"{rate / 1024:g} KiB/s",
                         f"{got / 1024:.0f} KiB/s TCP payload",
                         f"error {got / rate - 1:+.1%} (rate counts headers: ~-4% expected)"))
        for loss in (10, 30):
            with _inject("network.loss", b, dev_b, f"--percent={loss}%", "--port=9001",
                         "--protocol=udp", "--direction=ingress"):
                received = int(_ns(a, sys.executable, "-c", UDP_CLIENT, ip_b, "2000"))
            lost = (2000 - received) / 2000
            p = loss / 100
            width = 2.576 * (p * (1 - p) / 2000) ** 0.5
            ROWS.append(("kernel nft loss (ingress)", f"{loss}%", f"{lost:.1%} of 2000 datagrams",
                         f"99% binomial interval ±{width:.1%}"))
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(5)
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], check=False, timeout=10)
    if not netem_available():
        ROWS.append(("kernel netem latency/corruption/duplication", "-", "skipped",
                     "this kernel has no sch_netem; use the proxy"))


class _inject:
    """`chaos inject TYPE --netns NS --device DEV ...` held until the block ends (SIGINT)."""

    def __init__(self, fault: str, ns: str, dev: str, *flags: str) -> None:
        self.argv = [sys.executable, "-m", "chaos", "inject", fault, "--netns", ns, "--device",
                     dev, *flags, "--for", "5m"]
        self.ns, self.dev = ns, dev

    def __enter__(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            tc = subprocess.run(["tc", "-n", self.ns, "qdisc", "show", "dev", self.dev],
                                capture_output=True, text=True, timeout=10, check=False).stdout
            if "ca05:" in tc or "chaos_" in _ns(self.ns, "nft", "list", "tables"):
                time.sleep(0.2)
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.argv} did not inject within 20 s")

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)


def main() -> int:
    with tempfile.TemporaryDirectory() as state:
        os.environ["CHAOS_STATE_DIR"] = state
        os.environ["CHAOS_RUNS_DIR"] = str(Path(state) / "runs")
        print("proxy faults...", file=sys.stderr)
        proxy_rows()
        if "--no-kernel" not in sys.argv:
            print("kernel faults...", file=sys.stderr)
            kernel_rows()
    print("## Network fault fidelity: target vs measured by an independent client\n")
    print("| fault | target | measured | note |")
    print("|---|---|---|---|")
    for row in ROWS:
        print("| " + " | ".join(row) + " |")
    print("\n" + json.dumps({"rows": len(ROWS)}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
