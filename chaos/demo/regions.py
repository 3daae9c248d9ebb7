"""Network namespaces as "regions" for the region-loss scenario, declared as a service: each
region is a namespace joined to the host by a veth pair, so a load balancer on the host reaches
the replicas in it the way it would reach another data centre, and a kernel fault inside one
namespace cuts that region off.

    python -m chaos.demo.regions chaos-ra=10.78.1 chaos-rb=10.78.2

makes namespace `chaos-ra` with `eth0` 10.78.1.2/24 (the host side, `chaos-ra-h`, is
10.78.1.1/24), and so on, then waits. On SIGTERM or SIGINT it prints each namespace's nftables
ruleset (what a fault left behind would show there: the log is the evidence) and deletes the
namespaces, veth pairs with them. Needs root (ip, nft). Namespaces that already exist are
refused rather than taken over.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=10, capture_output=True, text=True)


def _ruleset(name: str) -> str:
    try:
        done = subprocess.run(["ip", "netns", "exec", name, "nft", "list", "ruleset"],
                              timeout=10, capture_output=True, text=True, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(could not list: {exc})"
    return done.stdout.strip() or done.stderr.strip()


def up(name: str, net: str) -> None:
    host_side = f"{name}-h"[:15]
    _ip("link", "add", host_side, "type", "veth", "peer", "name", "eth0", "netns", name)
    _ip("addr", "add", f"{net}.1/24", "dev", host_side)
    _ip("link", "set", host_side, "up")
    _ip("-n", name, "addr", "add", f"{net}.2/24", "dev", "eth0")
    _ip("-n", name, "link", "set", "eth0", "up")
    _ip("-n", name, "link", "set", "lo", "up")


def down(name: str) -> None:
    ruleset = _ruleset(name)
    print(f"region {name} nftables ruleset at teardown: "
          f"{'empty' if not ruleset else chr(10) + ruleset}", flush=True)
    subprocess.run(["ip", "netns", "del", name], timeout=10, capture_output=True, check=False)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    regions = [arg.partition("=")[::2] for arg in argv]
    if not regions or any(not name or net.count(".") != 2 for name, net in regions):
        print("usage: python -m chaos.demo.regions NAME=A.B.C [NAME=A.B.C ...]",
              file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    made: list[str] = []
    try:
        for name, net in regions:
            _ip("netns", "add", name)  # refuses an existing one: never delete what we did not make
            made.append(name)
            up(name, net)
            print(f"region {name}: {net}.2 (host side {net}.1)", flush=True)
        stop.wait()
    except subprocess.CalledProcessError as exc:
        print(f"cannot set up the regions: {' '.join(exc.cmd)}: {exc.stderr.strip()}",
              file=sys.stderr)
        return 1
    finally:
        for name in reversed(made):
            down(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
