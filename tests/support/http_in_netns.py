"""An HTTP application in a network namespace (the pod's), and an independent client outside.

`serve` runs `python -m http.server` on 0.0.0.0:PORT in a namespace; `statuses` makes n
requests from another namespace, a new connection each, and counts the statuses (or the
exception names) it got; `ruleset` is the namespace's nftables ruleset.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import wait_until

PORT = 8080
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


def statuses(client_ns: str, host: str, n: int, path: str = "/") -> dict[str, int]:
    """What an independent client in `client_ns` gets for n requests to host:PORT."""
    done = subprocess.run(["ip", "netns", "exec", client_ns, sys.executable, "-c", CLIENT,
                           host, str(PORT), path, str(n)],
                          capture_output=True, text=True, timeout=300, check=True)
    return dict(json.loads(done.stdout))


def ruleset(ns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"],
                          capture_output=True, text=True, timeout=10, check=True).stdout


@contextlib.contextmanager
def serve(pair: dict[str, str], root: Path) -> Iterator[None]:
    """An HTTP server on 0.0.0.0:PORT in namespace b serving `root`, reachable from a."""
    (root / "pay").write_text("paid")
    server = subprocess.Popen(["ip", "netns", "exec", pair["b"], sys.executable, "-m",
                               "http.server", str(PORT), "--bind", "0.0.0.0"], cwd=root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: statuses(pair["a"], pair["ip_b"], 1).get("200"), 60,
                          every=0.3) is not None
        yield
    finally:
        server.kill()
        server.wait(10)
