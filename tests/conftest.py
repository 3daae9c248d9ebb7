"""Shared fixtures: an isolated state dir per test, the real CLI as a subprocess, real servers."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.system_tools import require

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--with-e2e", action="store_true", default=False,
                     help="run tests marked e2e (a real cluster: needs KUBECONFIG)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.needs("nft", ...)`: a missing program fails the test in one line naming
    its Debian package, before any fixture runs it."""
    for mark in item.iter_markers("needs"):
        require(*mark.args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--with-e2e") and os.environ.get("KUBECONFIG"):
        return
    reason = ("e2e: needs a real cluster; run with KUBECONFIG=... pytest --with-e2e tests/e2e"
              if not config.getoption("--with-e2e") else "e2e: --with-e2e given but KUBECONFIG is not set")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True, scope="session")
def _loopback_never_through_a_proxy() -> Iterator[None]:
    """Every test talks to 127.0.0.1 only; an `http_proxy` set on a CI machine must not route
    urllib (tests, webhooks) or any child process through it. Children inherit the environment."""
    patch = pytest.MonkeyPatch()
    for name in ("no_proxy", "NO_PROXY"):
        patch.setenv(name, "127.0.0.1,localhost")
    yield
    patch.undo()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepts_connections(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port` now."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ledger/lock directory, also exported for CLI subprocesses."""
    path = tmp_path / "state"
    monkeypatch.setenv("CHAOS_STATE_DIR", str(path))
    monkeypatch.setenv("CHAOS_RUNS_DIR", str(tmp_path / "runs"))
    return path


def chaos_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "chaos", *args]


def run_chaos(*args: str, timeout: float = 120, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(chaos_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or ROOT, env={**os.environ, **(env or {})}, check=False)


def status_injections(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """The open injections of a `chaos status --json` result, after checking it is one
    chaos.status/v1 document whose exit code is the command's."""
    document = json.loads(result.stdout)
    assert document["schema"] == "chaos.status/v1", result.stdout
    assert document["exit_code"] == result.returncode, (result.stdout, result.stderr)
    assert document["orphaned"] == (result.returncode == 5), result.stdout
    return list(document["injections"])


def open_injections(timeout: float = 60, env: dict[str, str] | None = None
                    ) -> list[dict[str, Any]]:
    """`chaos status --json`, run now: the open injections it lists."""
    return status_injections(run_chaos("status", "--json", timeout=timeout, env=env))


def release(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGKILL) -> None:
    """End a test's process even if a fault left it frozen (a stopped process ignores TERM)."""
    try:
        os.kill(proc.pid, signal.SIGCONT)
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
    proc.wait(5)


@pytest.fixture
def sleeper() -> Iterator[psutil.Process]:
    """A real, harmless target process that belongs to the test."""
    proc = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"])
    yield psutil.Process(proc.pid)
    release(proc)


@pytest.fixture
def demo_service() -> Iterator[int]:
    """The bundled demo HTTP service on a free port; yields the port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "chaos.demo.service", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    release(proc, signal.SIGTERM)


def process_state(pid: int) -> str:
    """The kernel's view, read from /proc: R, S, T (stopped), Z..."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


# --- shared by the integration tests: waiting, marked target processes, journals, a web server


def wait_until(predicate: Callable[[], object], timeout: float, every: float = 0.02) -> float | None:
    """Seconds it took until `predicate()` was truthy, or None if it never was within `timeout`."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(every)


def unique_marker(prefix: str = "chaos-it") -> str:
    """A string to put in a target's command line, so selectors match only this test's processes."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def processes_matching(fragment: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line contains `fragment`, the test excluded."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.status() != psutil.STATUS_ZOMBIE and (
                fragment in " ".join(proc.cmdline())
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def is_running(pid: int) -> bool:
    """Alive and not stopped, per /proc (a zombie or a frozen process does not count)."""
    try:
        return process_state(pid) not in ("T", "t", "Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def journals(runs_dir: Path) -> list[dict[str, Any]]:
    """Every journal under RUNS_DIR/*/journal.json, oldest first."""
    docs = [json.loads(p.read_text()) for p in runs_dir.glob("*/journal.json")]
    return sorted(docs, key=lambda d: d.get("started") or 0)


SLEEPER_CODE = "import time\nwhile True: time.sleep(0.05)"


@pytest.fixture
def spawn_sleepers() -> Iterator[Callable[..., list[psutil.Process]]]:
    """Factory: `spawn(n, marker, user=None, argv=None)` starts n harmless target processes with
    `marker` as their last argument; all are resumed and killed when the test ends."""
    started: list[subprocess.Popen[bytes]] = []

    def spawn(count: int = 1, marker: str = "", *, user: str | None = None,
              argv: list[str] | None = None) -> list[psutil.Process]:
        procs = []
        for _ in range(count):
            cmd = argv or [sys.executable, "-c", SLEEPER_CODE, marker]
            proc = subprocess.Popen(cmd, user=user, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            started.append(proc)
            procs.append(psutil.Process(proc.pid))
        return procs

    yield spawn
    for proc in started:
        release(proc)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes for probing: `/` ok, `/status/NNN`, `/slow?ms=N`, `/split` (headers and body in
    separate writes), `/chunked`, `/flaky` (every other request fails), `/sometimes-slow?ms=N`
    (every other request sleeps N ms)."""

    protocol_version = "HTTP/1.1"
    server: WebServer

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        status, body = 200, b"hello from the chaos test server"
        if url.path.startswith("/status/"):
            status, body = int(url.path.rsplit("/", 1)[1]), b"as you asked"
        elif url.path == "/slow":
            time.sleep(float(urllib.parse.parse_qs(url.query).get("ms", ["1000"])[0]) / 1000)
            body = b"slow but fine"
        elif url.path == "/sometimes-slow":
            with self.server.lock:
                self.server.slow_count += 1
                slow = self.server.slow_count % 2 == 0
            if slow:
                time.sleep(float(urllib.parse.parse_qs(url.query).get("ms", ["1000"])[0]) / 1000)
        elif url.path == "/flaky":
            with self.server.lock:
                self.server.flaky_count += 1
                status = 200 if self.server.flaky_count % 2 else 500
        elif url.path == "/split":
            self.send_response(200)
            self.send_header("Content-Length", "15")
            self.end_headers()
            self.wfile.flush()
            time.sleep(0.1)
            self.wfile.write(b"the second part")
            return
        elif url.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in (b"first chunk, ", b"second chunk"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
                time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class WebServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tls = tls
        self.lock = threading.Lock()
        self.flaky_count = 0
        self.slow_count = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        # the handshake runs in the request's thread, so a stuck client cannot block the acceptor
        with self.tls.wrap_socket(request, server_side=True) as wrapped:
            super().finish_request(wrapped, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out or reject the certificate are expected here


@contextlib.contextmanager
def serving(tls: ssl.SSLContext | None = None,
            server: http.server.HTTPServer | None = None) -> Iterator[Any]:
    """Serve `server` (default: a WebServer) from a thread for the duration of the block."""
    server = server or WebServer(tls)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def web_server() -> Iterator[WebServer]:
    """A real HTTP server on 127.0.0.1 (in a thread of the test), see _Handler for routes."""
    with serving() as server:
        yield server


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs mounted for the test (root only), so disk faults never touch a real disk."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", str(mount)],
                   check=True, timeout=10)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=10)


@pytest.fixture
def netns_pair() -> Iterator[dict[str, str]]:
    """Two network namespaces joined by a veth pair (root only), deleted even if the test fails:
    {a, b: namespace names, dev_a, dev_b: devices, ip_a, ip_b: 10.x addresses inside them}."""
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    require("ip")
    tag = uuid.uuid4().hex[:6]
    subnet = f"10.{200 + int(tag[:2], 16) % 50}.{int(tag[2:4], 16)}"
    pair = {"a": f"chaos-{tag}-a", "b": f"chaos-{tag}-b", "dev_a": f"cv{tag}a",
            "dev_b": f"cv{tag}b", "ip_a": f"{subnet}.1", "ip_b": f"{subnet}.2"}

    def ip(*argv: str) -> None:
        subprocess.run(["ip", *argv], check=True, timeout=10, capture_output=True)

    try:
        ip("netns", "add", pair["a"])
        ip("netns", "add", pair["b"])
        ip("link", "add", pair["dev_a"], "netns", pair["a"], "type", "veth", "peer", "name",
           pair["dev_b"], "netns", pair["b"])
        for side in ("a", "b"):
            ns, dev = pair[side], pair[f"dev_{side}"]
            ip("-n", ns, "addr", "add", f"{pair[f'ip_{side}']}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield pair
    finally:
        for side in ("a", "b"):
            subprocess.run(["ip", "netns", "del", pair[side]], check=False, timeout=10,
                           capture_output=True)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    """A real Docker engine (the system's, or a private dockerd) with the busybox test image;
    shared by the session. Without root it is skipped; a missing program fails in one line."""
    from tests.support import docker_engine as support

    why = support.unavailable()
    if why:  # like every missing program: one line naming the package (root tests skip as root)
        if os.geteuid() != 0:
            pytest.skip(why)
        pytest.fail(f"container tests cannot run: {why}", pytrace=False)
    with support.engine() as engine:
        yield engine


@pytest.fixture(scope="session")
def podman_engine() -> Iterator[Any]:
    """A private rootful Podman service (its Docker-compatible socket) with the busybox test
    image; shared by the session, nothing left on the machine after it."""
    from tests.support import podman_engine as support

    why = support.unavailable()
    if why:
        if os.geteuid() != 0:
            pytest.skip(why)
        pytest.fail(f"podman container tests cannot run: {why}", pytrace=False)
    with support.engine() as engine:
        yield engine


# the engines a test runs on with @pytest.mark.parametrize("containers", ENGINES, indirect=True)
ENGINES = ["docker", "podman"]


@pytest.fixture
def containers(request: pytest.FixtureRequest,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The engine (Docker, or the one named by an indirect parameter: "podman"), with
    DOCKER_HOST pointing at it for chaos; removes what the test named."""
    docker_engine = request.getfixturevalue(f"{getattr(request, 'param', 'docker')}_engine")
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    names: list[str] = []

    class Containers:
        engine = docker_engine

        def run(self, *argv: str, options: tuple[str, ...] = (), name: str = "") -> str:
            name = name or unique_marker("chaos-ct")
            names.append(name)
            docker_engine.run(name, *argv, options=options)
            return name

        def web(self, port: int, options: tuple[str, ...] = (), name: str = "") -> str:
            """busybox httpd on 8080 in the container, published on 127.0.0.1:port."""
            name = self.run("httpd", "-f", "-p", "8080", "-h", "/www", name=name,
                            options=("--init", "-p", f"127.0.0.1:{port}:8080", *options))
            assert wait_until(lambda: http_ok(port), 30, 0.05) is not None, name
            return name

    yield Containers()
    docker_engine.remove(*names)


def http_ok(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.")
    except OSError:
        return False
