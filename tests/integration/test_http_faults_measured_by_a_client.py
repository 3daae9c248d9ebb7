"""HTTP faults on the fault proxy, measured by an independent client and the upstream's own log.

A real proxy process (`--protocol http`) sits between http.client and a real upstream process
that logs every request it reads (tests/support/http_upstream.py). Rules go in and out over the
control channel while keep-alive connections stay open. The issue's tolerances: the share of
503s for 30% inside the 99% binomial interval, only matching paths and methods touched, the
added delay within +-2 ms (p50) on loopback.
"""

from __future__ import annotations

import asyncio
import http.client
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos.adapters.local.proxy_control import read_locator, request
from tests.conftest import ROOT, chaos_cmd, free_port, open_injections, run_chaos, wait_until
from tests.support.tls_material import make_ca_and_server

Z_99 = 2.576


class Upstream:
    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.http_upstream",
                                      str(log)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


class HttpProxy:
    def __init__(self, upstream: int, control: Path, *extra: str) -> None:
        self.control = str(control)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chaos.adapters.local.proxy_control", "--listen",
             "127.0.0.1:0", "--upstream", f"127.0.0.1:{upstream}", "--control", self.control,
             "--protocol", "http", *extra], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("ready"), line
        self.port = int(line.split()[1].rsplit(":", 1)[1])

    def call(self, **message: Any) -> dict[str, Any]:
        return asyncio.run(request(self.control, message))

    def add(self, kind: str, percent: float = 1.0, **rule: Any) -> str:
        ident = f"{kind}-{time.monotonic_ns()}"
        self.call(op="add", toxic={"id": ident, "kind": kind, "toxicity": percent,
                                   "rule": {"seed": "test", **rule}})
        return ident

    def remove(self, ident: str) -> None:
        assert self.call(op="remove", id=ident)["removed"]


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(5)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    server = Upstream(tmp_path / "upstream.log")
    try:
        yield server
    finally:
        stop(server.proc)


@pytest.fixture
def proxy(upstream: Upstream, tmp_path: Path) -> Iterator[HttpProxy]:
    p = HttpProxy(upstream.port, tmp_path / "control.sock")
    try:
        yield p
    finally:
        stop(p.proc)


@pytest.fixture
def client() -> Iterator[Any]:
    """Opens keep-alive connections to a port; closes them all at the end."""
    opened: list[http.client.HTTPConnection] = []

    def connect(port: int) -> http.client.HTTPConnection:
        opened.append(http.client.HTTPConnection("127.0.0.1", port, timeout=10))
        return opened[-1]

    yield connect
    for conn in opened:
        conn.close()


def get(conn: http.client.HTTPConnection, path: str, method: str = "GET",
        body: Any = None, **kw: Any) -> tuple[int, bytes]:
    conn.request(method, path, body=body, **kw)
    answer = conn.getresponse()
    return answer.status, answer.read()


def test_abort_hits_its_share_of_matching_requests_and_nothing_else(
        proxy: HttpProxy, upstream: Upstream, client: Any) -> None:
    proxy.add("http_abort", 0.3, status=503, body="down for chaos",
              set_headers={"Retry-After": "7"}, match={"path_prefix": "/pay", "method": "GET"})
    conn = client(proxy.port)
    n, aborted = 1000, 0
    for i in range(n):
        conn.request("GET", f"/pay/{i}?q=1")
        answer = conn.getresponse()
        body = answer.read()
        if answer.status == 503:
            aborted += 1
            assert body == b"down for chaos" and answer.getheader("Retry-After") == "7"
        else:
            assert (answer.status, body) == (200, f"ok GET /pay/{i}?q=1 0".encode())
    spread = Z_99 * math.sqrt(n * 0.3 * 0.7)
    assert n * 0.3 - spread <= aborted <= n * 0.3 + spread, aborted
    # neither other paths nor other methods are touched, on the same connection
    for _ in range(200):
        assert get(conn, "/cart")[0] == 200
        assert get(conn, "/pay/x", "POST", b"abc")[0] == 200
    lines = upstream.lines()
    assert sum(line.startswith("GET /pay/") for line in lines) == n - aborted
    assert lines.count("GET /cart 0") == 200 and lines.count("POST /pay/x 3") == 200
    assert proxy.call(op="stats")["requests"] == n + 400


def test_percent_decisions_are_reproducible_from_the_seed(proxy: HttpProxy, client: Any) -> None:
    def pattern() -> list[int]:
        ident = proxy.add("http_abort", 0.5, status=500, match={})
        conn = client(proxy.port)
        statuses = [get(conn, "/")[0] for _ in range(60)]
        proxy.remove(ident)
        return statuses

    first = pattern()
    assert first == pattern() and 500 in first and 200 in first


def test_rules_come_and_go_on_an_open_keep_alive_connection(proxy: HttpProxy, client: Any) -> None:
    conn = client(proxy.port)
    assert get(conn, "/a")[0] == 200
    sock = conn.sock
    ident = proxy.add("http_abort", status=502, match={"path": "/a"})
    assert get(conn, "/a")[0] == 502 and get(conn, "/b")[0] == 200
    proxy.remove(ident)
    assert get(conn, "/a") == (200, b"ok GET /a 0")
    assert conn.sock is sock  # one connection all along: the client never reconnected


def test_delay_adds_the_asked_time_to_matching_requests_only(proxy: HttpProxy,
                                                              client: Any) -> None:
    """Requests to a held path and to a free one alternate, so load hits both alike."""
    conn = client(proxy.port)
    proxy.add("http_delay", delay=0.05, match={"path": "/held"})
    proxy.add("http_delay", delay=0.03, phase="response", match={"path": "/late"})
    times: dict[str, list[float]] = {"/held": [], "/late": [], "/free": []}
    for _ in range(40):
        for path, samples in times.items():
            start = time.perf_counter()
            assert get(conn, path)[0] == 200
            samples.append((time.perf_counter() - start) * 1000)
    free = statistics.median(times["/free"])
    assert 48 <= statistics.median(times["/held"]) - free <= 52, times
    assert 28 <= statistics.median(times["/late"]) - free <= 32, times
    assert free < 20  # the free path is not held


def test_chunked_bodies_pass_both_ways_and_replace_rewrites_them(
        proxy: HttpProxy, upstream: Upstream, client: Any) -> None:
    conn = client(proxy.port)
    assert get(conn, "/chunked") == (200, b"onetwothree")
    chunks = iter([b"hello ", b"chunked ", b"world"])
    assert get(conn, "/up", "POST", chunks, encode_chunked=True) == (200, b"ok POST /up 19")
    proxy.add("http_replace", status=500, body="replaced", set_headers={"X-Chaos": "yes"},
              match={"path": "/chunked"})
    conn.request("GET", "/chunked")
    answer = conn.getresponse()
    assert (answer.status, answer.read(), answer.getheader("X-Chaos")) == (
        500, b"replaced", "yes")
    assert get(conn, "/after") == (200, b"ok GET /after 0")  # the connection is still in step
    assert upstream.lines().count("GET /chunked 0") == 2  # replace forwards the request


def test_reset_cuts_the_response_part_way(proxy: HttpProxy, client: Any) -> None:
    proxy.add("http_reset", after=20, match={"path": "/cut"})
    conn = client(proxy.port)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        get(conn, "/cut")
    conn = client(proxy.port)
    assert get(conn, "/whole")[0] == 200


def test_throttle_answers_429_above_the_rate(proxy: HttpProxy, client: Any) -> None:
    proxy.add("http_throttle", rate=5.0, match={})
    conn = client(proxy.port)
    start = time.monotonic()
    statuses = [get(conn, "/")[0] for _ in range(60)]
    elapsed = time.monotonic() - start
    assert set(statuses) == {200, 429}
    assert statuses.count(200) <= 5 + 5 * elapsed + 1


def test_an_upstream_that_is_not_http_gets_a_clear_502(tmp_path: Path, client: Any) -> None:
    port = free_port()
    echo = subprocess.Popen([sys.executable, "-c",
                             "import socket\ns=socket.create_server(('127.0.0.1',%d))\n"
                             "while True:\n c,_=s.accept(); c.recv(100); c.sendall(b'+PONG\\r\\n"
                             "\\r\\n')" % port], text=True)
    try:
        assert wait_until(lambda: _listening(port), 10) is not None
        p = HttpProxy(port, tmp_path / "c.sock")
        try:
            conn = client(p.port)
            status, body = get(conn, "/")
            assert status == 502 and b"did not answer in HTTP/1.x" in body
            assert "not an HTTP/1.x status line" in p.call(op="stats")["last_error"]
        finally:
            stop(p.proc)
    finally:
        echo.kill()
        echo.wait(5)


def _listening(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def test_an_https_upstream_is_reached_over_tls_re_originated_by_the_proxy(
        tmp_path: Path, client: Any) -> None:
    files = make_ca_and_server(tmp_path)
    server = subprocess.Popen([sys.executable, "-m", "tests.support.https_upstream",
                               str(files["cert"]), str(files["key"])], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        p = HttpProxy(port, tmp_path / "c.sock", "--upstream-tls")
        try:
            conn = client(p.port)  # plain HTTP to the proxy
            assert get(conn, "/x") == (200, b"upstream /x")
            p.add("http_abort", status=503, match={"path": "/x"})
            assert get(conn, "/x")[0] == 503 and get(conn, "/y") == (200, b"upstream /y")
            assert p.call(op="stats")["upstream_tls"] is True
        finally:
            stop(p.proc)
    finally:
        stop(server)


def test_header_matches_http2_and_expect_continue(proxy: HttpProxy, upstream: Upstream,
                                                  client: Any) -> None:
    proxy.add("http_abort", status=429, match={"headers": {"X-User": "^test-"}})
    conn = client(proxy.port)
    assert get(conn, "/h", headers={"X-User": "test-1"})[0] == 429
    assert get(conn, "/h", headers={"X-User": "real-1"})[0] == 200
    assert get(conn, "/h")[0] == 200
    # a request announcing Expect: 100-continue is forwarded with its body
    assert get(conn, "/e", "POST", b"12345", headers={"Expect": "100-continue"}) == (
        200, b"ok POST /e 5")
    assert upstream.lines().count("GET /h 0") == 2
    import socket

    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 505") and b"HTTP/2 is not supported" in answer


def test_a_partition_cuts_an_http_proxy_off_and_ends(proxy: HttpProxy, client: Any) -> None:
    assert get(client(proxy.port), "/")[0] == 200
    proxy.call(op="add", toxic={"id": "cut", "kind": "down", "direction": "both"})
    assert wait_until(lambda: not _listening(proxy.port), 10) is not None
    proxy.remove("cut")
    assert wait_until(lambda: _listening(proxy.port), 10) is not None
    assert get(client(proxy.port), "/")[0] == 200


def test_a_tcp_proxy_refuses_http_rules_and_an_http_proxy_tcp_toxics(
        proxy: HttpProxy) -> None:
    with pytest.raises(RuntimeError, match="speaks HTTP"):
        proxy.call(op="add", toxic={"id": "l", "kind": "latency", "params": {"delay": 0.1}})
    assert proxy.call(op="list")["toxics"] == []


def test_chaos_inject_http_abort_from_the_terminal(upstream: Upstream, tmp_path: Path, client: Any) -> None:
    listen = free_port()
    cmd = subprocess.Popen(
        [sys.executable, "-m", "chaos", "inject", "http.abort", "--listen",
         f"127.0.0.1:{listen}", "--upstream", f"127.0.0.1:{upstream.port}", "--status", "503",
         "--percent", "100%", "--path", "/pay", "--set-headers", "{retry-after: '5'}",
         "--for", "4s", "--state-dir",
         str(tmp_path / "state")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_until(lambda: _listening(listen), 30) is not None
        conn = client(listen)
        # the proxy listens a moment before the rule is in: poll on the one connection
        assert wait_until(lambda: get(conn, "/pay")[0] == 503, 30) is not None
        passed = upstream.lines().count("GET /pay 0")
        conn.request("GET", "/pay")
        answer = conn.getresponse()
        answer.read()
        assert (answer.status, answer.getheader("Retry-After")) == (503, "5")
        assert get(conn, "/other")[0] == 200 and get(conn, "/pay")[0] == 503
        out, _ = cmd.communicate(timeout=60)
    finally:
        if cmd.poll() is None:
            cmd.kill()
            cmd.wait(5)
    assert cmd.returncode == 0, out
    assert upstream.lines().count("GET /pay 0") == passed and "GET /other 0" in upstream.lines()
    assert wait_until(lambda: not _listening(listen), 10) is not None  # the proxy went too


@pytest.mark.parametrize(("params", "message"), [
    ("{status: 999}", "faults[0].with.status: expected an integer from 100 to 599"),
    ("{status: 299}", "299 is not a registered HTTP status code"),
    ("{status: 503, percent: 130%}", "between 0% and 100%"),
    ("{status: 503, path_regex: '/pay(['}", "not a valid regular expression"),
    ("{status: 503, path: pay}", "faults[0].with.path: expected a string matching /"),
])
def test_bad_http_faults_are_refused_at_their_line(tmp_path: Path, params: str,
                                                   message: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("title: bad http fault\nfaults:\n  - type: http.abort\n"
                    "    target: {proxy: {listen: 127.0.0.1:1, upstream: 127.0.0.1:2}}\n"
                    f"    with: {params}\n    duration: 10s\n")
    result = run_chaos("validate", str(file))
    assert result.returncode == 2, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert message in out and f"{file}:5:" in out and "Traceback" not in out


def test_http_faults_refuse_a_tcp_proxy_target(tmp_path: Path) -> None:
    file = tmp_path / "tcp.yaml"
    file.write_text("title: wrong protocol\nfaults:\n  - type: http.abort\n    target:\n"
                    "      proxy: {listen: 127.0.0.1:1, upstream: 127.0.0.1:2, protocol: tcp}\n"
                    "    with: {status: 503}\n    duration: 10s\n")
    result = run_chaos("validate", str(file))
    assert result.returncode == 2 and "set protocol: http" in result.stdout + result.stderr


def test_watchdog_takes_an_http_fault_off_a_running_proxy_when_the_runner_is_killed(
        upstream: Upstream, tmp_path: Path, state_dir: Path, client: Any) -> None:
    listen = free_port()
    proxy = subprocess.Popen(chaos_cmd("proxy", "-q", "--protocol", "http", "--listen",
                                       f"127.0.0.1:{listen}", "--upstream",
                                       f"127.0.0.1:{upstream.port}"), cwd=ROOT)
    file = tmp_path / "abort.yaml"
    file.write_text(f"""title: payments fail
faults:
  - type: http.abort
    target: {{proxy: {{listen: 127.0.0.1:{listen}, upstream: 127.0.0.1:{upstream.port}}}}}
    with: {{status: 503, path: /pay}}
    duration: 60s
""")
    runner = None
    try:
        assert wait_until(lambda: read_locator(f"127.0.0.1:{listen}"), 20) is not None
        conn = client(listen)
        runner = subprocess.Popen(chaos_cmd("run", "-q", str(file)), cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(lambda: get(conn, "/pay")[0] == 503, 30, 0.1) is not None
        runner.kill()
        runner.wait(5)
        assert wait_until(lambda: get(conn, "/pay")[0] == 200, 20, 0.1) is not None
        assert proxy.poll() is None, "the proxy itself keeps running"
        assert wait_until(lambda: open_injections() == [], 20, 0.2) is not None
    finally:
        if runner is not None:
            runner.kill()
            runner.wait(5)
        proxy.kill()
        proxy.wait(5)


def test_an_upstream_closing_idle_connections_is_reconnected(tmp_path: Path,
                                                             client: Any) -> None:
    """The upstream answers one request per connection and closes it (keep-alive off)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", (
        "import socket\ns=socket.create_server(('127.0.0.1',%d))\nwhile True:\n"
        " c,_=s.accept(); c.recv(65536)\n"
        " c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok'); c.close()") % port])
    try:
        assert wait_until(lambda: _listening(port), 10) is not None
        p = HttpProxy(port, tmp_path / "c.sock")
        try:
            conn = client(p.port)
            assert [get(conn, "/")[0] for _ in range(5)] == [200] * 5  # one client connection
        finally:
            stop(p.proc)
    finally:
        server.kill()
        server.wait(5)
