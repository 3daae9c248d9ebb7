"""Probes ask real servers and processes on this machine, and are judged only by what they saw.

Each probe here runs against something real on 127.0.0.1 (an HTTP/HTTPS server, a listening
socket, a child process) and the test checks the sample's verdict and detail. Process effects
(the exec probe's child being killed) are checked from outside with psutil.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from chaos.slo.checks import Sample
from chaos.slo.http_client import MAX_BODY
from chaos.slo.probes import Probe
from tests.conftest import (
    WebServer,
    free_port,
    processes_matching,
    serving,
    unique_marker,
    wait_until,
)
from tests.support.answer_and_hold_server import answer_and_hold
from tests.support.openssl_certificate import certificate

__all__ = ["certificate"]  # the fixture: a self-signed certificate for 127.0.0.1


def sample(kind: str, **spec: Any) -> Sample:
    return asyncio.run(Probe("p", kind, spec).sample())


# --- http


def test_http_probe_passes_on_2xx_by_default(web_server: WebServer) -> None:
    result = sample("http", url=web_server.url("/"), timeout=2.0)
    assert result.ok, result.detail
    assert result.detail == "HTTP 200"
    assert 0 < result.latency < 2.0


def test_http_probe_fails_on_a_status_outside_the_default_2xx(web_server: WebServer) -> None:
    result = sample("http", url=web_server.url("/status/503"), timeout=2.0)
    assert not result.ok
    assert result.detail == "HTTP 503"


def test_http_probe_accepts_exactly_the_listed_statuses(web_server: WebServer) -> None:
    assert sample("http", url=web_server.url("/status/503"), status=[503], timeout=2.0).ok
    assert sample("http", url=web_server.url("/status/204"), status=[200, 204], timeout=2.0).ok
    refused = sample("http", url=web_server.url("/"), status=[201, 202], timeout=2.0)
    assert not refused.ok
    assert refused.detail == "HTTP 200"


def test_http_probe_matches_the_body_against_a_regex(web_server: WebServer) -> None:
    assert sample("http", url=web_server.url("/"), expect_body=r"hello .* server",
                  timeout=2.0).ok
    miss = sample("http", url=web_server.url("/"), expect_body=r"^goodbye", timeout=2.0)
    assert not miss.ok
    assert "body does not match" in miss.detail


def test_http_probe_reads_a_body_that_arrives_after_the_headers(web_server: WebServer) -> None:
    # The server flushes the headers, pauses, then sends the body: a probe that reads only the
    # first chunk would see an empty body.
    result = sample("http", url=web_server.url("/split"), expect_body="second part", timeout=2.0)
    assert result.ok, result.detail


def test_http_probe_reads_a_chunked_body(web_server: WebServer) -> None:
    result = sample("http", url=web_server.url("/chunked"), expect_body="first chunk, second",
                    timeout=2.0)
    assert result.ok, result.detail


def test_http_probe_counts_a_slow_answer_as_a_failure(web_server: WebServer) -> None:
    started = time.monotonic()
    result = sample("http", url=web_server.url("/slow?ms=3000"), timeout=0.3)
    assert not result.ok
    assert result.detail == "no answer within 0.3s"
    assert time.monotonic() - started < 2.0, "the timeout did not cut the probe short"


def test_http_probe_counts_a_refused_connection_as_a_failure() -> None:
    result = sample("http", url=f"http://127.0.0.1:{free_port()}/", timeout=2.0)
    assert not result.ok
    assert "ConnectionRefusedError" in result.detail


def sample_from(answer: bytes, url_of: Any = "http://127.0.0.1:{port}/", **spec: Any
                ) -> tuple[Sample, list[bytes]]:
    seen: list[bytes] = []

    async def main() -> Sample:
        server = await answer_and_hold(answer, seen)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await Probe("p", "http", {"url": url_of.format(port=port), **spec}).sample()
    return asyncio.run(main()), seen


def test_http_probe_reads_at_most_its_limit_of_one_huge_chunk() -> None:
    # Go servers send a whole answer as one chunk: a chunk declared at 1 GiB, of which more
    # than the limit arrives, is judged on the limit without waiting for (or buffering) the rest
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40000000\r\n"
    result, _ = sample_from(head + b"ok " * (MAX_BODY // 3 + 10), expect_body="^ok ok",
                            timeout=5.0)
    assert result.ok, result.detail


def test_http_probe_sends_the_urls_credentials_as_basic_auth() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    result, seen = sample_from(answer, "http://sre:p%40ss@127.0.0.1:{port}/", timeout=5.0)
    assert result.ok, result.detail
    sent = base64.b64encode(b"sre:p@ss").decode()
    assert f"Authorization: Basic {sent}\r\n".encode() in seen[0], seen
    assert b"Host: 127.0.0.1:" in seen[0] and b"sre" not in seen[0].split(b"Authorization")[0]


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[WebServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    with serving(context) as server:
        yield server


def test_https_probe_rejects_a_self_signed_certificate_by_default(tls_server: WebServer) -> None:
    result = sample("http", url=tls_server.url("/"), timeout=2.0)
    assert not result.ok
    assert "CERTIFICATE_VERIFY_FAILED" in result.detail or "certificate" in result.detail


def test_https_probe_with_verify_tls_false_accepts_it(tls_server: WebServer) -> None:
    result = sample("http", url=tls_server.url("/"), verify_tls=False, expect_body="hello",
                    timeout=2.0)
    assert result.ok, result.detail


def test_https_probe_verifies_against_a_trusted_certificate(
    tls_server: WebServer, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # OpenSSL's default trust store
    result = sample("http", url=tls_server.url("/"), timeout=2.0)
    assert result.ok, result.detail


# --- tcp


def test_tcp_probe_connects_to_a_listening_socket() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        result = sample("tcp", address=f"127.0.0.1:{port}", timeout=1.0)
    assert result.ok, result.detail


def test_tcp_probe_fails_when_nothing_listens() -> None:
    result = sample("tcp", address=f"127.0.0.1:{free_port()}", timeout=1.0)
    assert not result.ok
    assert "ConnectionRefusedError" in result.detail


# --- exec


def test_exec_probe_checks_the_exit_code() -> None:
    assert sample("exec", run=[sys.executable, "-c", "pass"], timeout=10.0).ok
    failed = sample("exec", run=[sys.executable, "-c", "raise SystemExit(3)"], timeout=10.0)
    assert not failed.ok
    assert failed.detail == "exit code 3"
    assert sample("exec", run=[sys.executable, "-c", "raise SystemExit(3)"], exit_code=3,
                  timeout=10.0).ok


def test_exec_probe_matches_stdout_against_a_regex() -> None:
    argv = [sys.executable, "-c", "print('replicas: 3 ready')"]
    assert sample("exec", run=argv, stdout=r"replicas: \d+ ready", timeout=10.0).ok
    miss = sample("exec", run=argv, stdout=r"replicas: 0", timeout=10.0)
    assert not miss.ok
    assert "stdout does not match" in miss.detail


def test_exec_probe_runs_argv_without_a_shell(tmp_path: Path) -> None:
    witness = tmp_path / "shell-ran"
    result = sample("exec", run=["echo", f"$(touch {witness})"], stdout=r"\$\(touch",
                    timeout=10.0)
    assert result.ok, result.detail
    assert not witness.exists()


def test_exec_probe_timeout_kills_the_child() -> None:
    marker = unique_marker()
    started = time.time() - 0.01
    result = sample("exec", run=[sys.executable, "-c", "import time; time.sleep(60)", marker],
                    timeout=0.5)
    assert not result.ok
    assert result.detail == "no answer within 0.5s"
    assert processes_matching(marker) == []
    # killed and reaped (no zombie either); children of earlier tests are not this test's concern
    assert [c for c in psutil.Process().children(recursive=True)
            if c.create_time() >= started] == []


def test_exec_probe_timeout_kills_the_childs_own_children_too() -> None:
    marker = unique_marker()
    code = ("import subprocess, sys, time\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', '{marker}'])\n"
            "time.sleep(60)")
    result = sample("exec", run=[sys.executable, "-c", code], timeout=1.0)
    assert not result.ok
    assert result.latency < 3.0, "a grandchild holding stdout kept the probe past its timeout"
    try:
        assert wait_until(lambda: processes_matching(marker) == [], 2.0) is not None, \
            "a grandchild of the exec probe outlived its timeout"
    finally:
        for proc in processes_matching(marker):
            proc.kill()


def test_exec_probe_with_a_missing_command_is_a_probe_error() -> None:
    from chaos.errors import ProbeError

    with pytest.raises(ProbeError, match="cannot run"):
        sample("exec", run=["/nonexistent/chaos-probe-command"], timeout=1.0)


# --- process


def test_process_probe_sees_a_running_process(spawn_sleepers: Any) -> None:
    marker = unique_marker()
    (target,) = spawn_sleepers(1, marker)
    result = sample("process", cmdline=marker)
    assert result.ok, result.detail
    assert sample("process", pid=target.pid).ok


def test_process_probe_counts_a_stopped_process_as_not_running(spawn_sleepers: Any) -> None:
    marker = unique_marker()
    (target,) = spawn_sleepers(1, marker)
    os.kill(target.pid, signal.SIGSTOP)
    try:
        assert wait_until(lambda: target.status() == psutil.STATUS_STOPPED, 5) is not None
        result = sample("process", cmdline=marker)
        assert not result.ok
        assert result.detail == "no running process"
    finally:
        os.kill(target.pid, signal.SIGCONT)
    assert wait_until(lambda: sample("process", cmdline=marker).ok, 5) is not None


def test_process_probe_fails_once_the_process_is_gone(spawn_sleepers: Any,
                                                      tmp_path: Path) -> None:
    marker = unique_marker()
    (target,) = spawn_sleepers(1, marker)
    pidfile = tmp_path / "target.pid"
    pidfile.write_text(f"{target.pid}\n")
    assert sample("process", pidfile=str(pidfile)).ok
    target.kill()
    target.wait(5)
    assert not sample("process", cmdline=marker).ok
    assert not sample("process", pidfile=str(pidfile)).ok


def test_process_probe_counts_a_missing_pidfile_as_not_running(tmp_path: Path) -> None:
    # daemons remove their pidfile as they stop: that is a failed sample, not a broken probe
    result = sample("process", pidfile=str(tmp_path / "gone.pid"))
    assert not result.ok
    assert "cannot read a pid from pidfile" in result.detail


def test_process_probe_with_a_bad_regex_is_a_probe_error() -> None:
    from chaos.errors import ProbeError

    with pytest.raises(ProbeError, match="not a valid regular expression"):
        sample("process", cmdline="([unclosed")
