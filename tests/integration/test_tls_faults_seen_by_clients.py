"""TLS faults on the fault proxy, as real TLS clients (Python's ssl, openssl s_client) see them.

A real proxy process relays to a real HTTPS upstream whose certificate a test CA signed. Without
a fault the client sees the upstream's own certificate; with `tls.certificate` it sees exactly
the fault asked for (dates, SAN, issuer, key size) and its verification fails for that reason
only, while a client that trusts anything still reaches the upstream through the proxy.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from chaos.adapters.local.proxy_control import request
from tests.conftest import free_port, run_chaos, wait_until
from tests.support.tls_material import make_ca_and_server


class Setup:
    def __init__(self, tmp: Path) -> None:
        self.files = make_ca_and_server(tmp)
        self.upstream = subprocess.Popen([sys.executable, "-m", "tests.support.https_upstream",
                                          str(self.files["cert"]), str(self.files["key"])],
                                         stdout=subprocess.PIPE, text=True)
        assert self.upstream.stdout is not None
        self.upstream_port = int(self.upstream.stdout.readline())
        self.control = str(tmp / "c.sock")
        self.proxy = subprocess.Popen(
            [sys.executable, "-m", "chaos.adapters.local.proxy_control", "--listen",
             "127.0.0.1:0", "--upstream", f"127.0.0.1:{self.upstream_port}", "--control",
             self.control], stdout=subprocess.PIPE, text=True)
        assert self.proxy.stdout is not None
        self.port = int(self.proxy.stdout.readline().split()[1].rsplit(":", 1)[1])

    def add(self, kind: str, **rule: Any) -> str:
        ident = f"{kind}-{time.monotonic_ns()}"
        toxic: dict[str, Any] = {"id": ident, "kind": kind}
        if kind == "tls_certificate":
            toxic["rule"] = rule
        else:
            toxic["params"] = rule
        asyncio.run(request(self.control, {"op": "add", "toxic": toxic}))
        return ident

    def remove(self, ident: str) -> None:
        assert asyncio.run(request(self.control, {"op": "remove", "id": ident}))["removed"]

    def trusting(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.files["ca"]))


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[Setup]:
    setup = Setup(tmp_path)
    try:
        yield setup
    finally:
        for proc in (setup.proxy, setup.upstream):
            proc.kill()
            proc.wait(5)
            assert proc.stdout is not None
            proc.stdout.close()


def fetch(port: int, context: ssl.SSLContext, path: str = "/") -> tuple[bytes, x509.Certificate]:
    """An HTTPS GET; the answer's body and the certificate the server presented."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        der = sock.getpeercert(binary_form=True)
        assert der is not None
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1], x509.load_der_x509_certificate(der)


def anything() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


# certificate -> (OpenSSL verify code Python reports, what openssl s_client prints)
EXPECTED = {
    "expired": (10, "certificate has expired"),
    "not_yet_valid": (9, "certificate is not yet valid"),
    "wrong_host": (64, "IP address mismatch"),  # clients here connect to 127.0.0.1
    "self_signed": (18, "self-signed certificate"),
    "untrusted_ca": (20, "unable to get local issuer certificate"),
    "weak_key": (66, "EE certificate key too weak"),
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_clients_see_exactly_the_certificate_fault_asked_for(tls: Setup, kind: str) -> None:
    body, cert = fetch(tls.port, tls.trusting(), "/before")
    assert body == b"upstream /before"
    real = cert.serial_number
    ident = tls.add("tls_certificate", certificate=kind, ca_cert=str(tls.files["ca"]),
                    ca_key=str(tls.files["ca_key"]))
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        fetch(tls.port, tls.trusting())
    code, text = EXPECTED[kind]
    assert refused.value.verify_code == code, refused.value
    body, cert = fetch(tls.port, anything(), "/through")  # forwarded over a new TLS connection
    assert body == b"upstream /through" and cert.serial_number != real
    now = datetime.datetime.now(datetime.timezone.utc)
    if kind == "expired":
        assert cert.not_valid_after_utc < now
    if kind == "not_yet_valid":
        assert cert.not_valid_before_utc > now
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = [str(n.value) for n in san]
    assert names == (["wrong-host.chaos.invalid"] if kind == "wrong_host" else ["127.0.0.1"])
    if kind == "weak_key":
        assert cert.public_key().key_size == 1024  # type: ignore[union-attr]
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{tls.port}",
                          "-CAfile", str(tls.files["ca"]), "-verify_return_error",
                          "-verify_ip", "127.0.0.1"], input="", capture_output=True, text=True,
                         timeout=30)
    assert text.lower() in (out.stdout + out.stderr).lower(), out.stdout + out.stderr
    tls.remove(ident)
    body, cert = fetch(tls.port, tls.trusting(), "/after")
    assert body == b"upstream /after" and cert.serial_number == real


def test_handshake_delay_holds_new_handshakes_and_reset_cuts_them(tls: Setup) -> None:
    ident = tls.add("tls_handshake_delay", delay=0.5)
    start = time.monotonic()
    assert fetch(tls.port, tls.trusting())[0] == b"upstream /"
    assert time.monotonic() - start >= 0.5
    tls.remove(ident)
    ident = tls.add("tls_reset_handshake")
    with pytest.raises((ConnectionResetError, ssl.SSLError)):
        fetch(tls.port, tls.trusting())
    tls.remove(ident)
    assert fetch(tls.port, tls.trusting())[0] == b"upstream /"


@pytest.mark.parametrize(("target", "params", "message"), [
    ("protocol: http", "{certificate: expired}", "use a proxy with protocol: tcp"),
    ("protocol: tcp", "{certificate: stale}", "expected one of expired"),
    ("protocol: tcp", "{certificate: expired, ca_cert: /x.pem}", "give both ca_cert and ca_key"),
])
def test_bad_tls_faults_are_refused_at_their_line(tmp_path: Path, target: str, params: str,
                                                  message: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("title: bad tls fault\nfaults:\n  - type: tls.certificate\n    target:\n"
                    f"      proxy: {{listen: 127.0.0.1:1, upstream: 127.0.0.1:2, {target}}}\n"
                    f"    with: {params}\n    duration: 10s\n")
    result = run_chaos("validate", str(file))
    out = result.stdout + result.stderr
    assert result.returncode == 2 and message in out and f"{file}:" in out, out
    assert "Traceback" not in out


def test_chaos_inject_tls_certificate_from_the_terminal(tls: Setup, tmp_path: Path) -> None:
    listen = free_port()
    cmd = subprocess.Popen(
        [sys.executable, "-m", "chaos", "inject", "tls.certificate", "--listen",
         f"127.0.0.1:{listen}", "--upstream", f"127.0.0.1:{tls.upstream_port}", "--certificate",
         "expired", "--ca-cert", str(tls.files["ca"]), "--ca-key", str(tls.files["ca_key"]),
         "--for", "4s", "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def refused_as_expired() -> bool:
        try:
            fetch(listen, tls.trusting())
        except ssl.SSLCertVerificationError as exc:
            return exc.verify_code == 10
        except OSError:
            return False
        return False

    try:
        assert wait_until(refused_as_expired, 30, 0.1) is not None
        out, _ = cmd.communicate(timeout=60)
    finally:
        if cmd.poll() is None:
            cmd.kill()
            cmd.wait(5)
    assert cmd.returncode == 0, out
