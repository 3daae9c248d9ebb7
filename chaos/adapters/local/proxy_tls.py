"""TLS faults on the fault proxy: a bad certificate, a slow or reset handshake.

The proxy relays TLS untouched (clients see the upstream's own certificate) until a TLS toxic
reaches a new connection. Then, before any byte is relayed: `tls_reset_handshake` waits for the
ClientHello and resets the connection; `tls_handshake_delay` holds the ClientHello; and
`tls_certificate` terminates TLS itself with a certificate made for the fault — expired, not
yet valid, for another host, self-signed, from a CA nobody trusts, or with a 1024-bit RSA key —
and forwards the decrypted stream to the upstream over a new TLS connection (or plain TCP with
`upstream_tls: false`). Certificates are made with the `cryptography` package when the toxic is
added (imported only then), signed by `ca_cert`/`ca_key` when given (a CA the clients trust, so
that they see only the fault asked for) or else by a CA made on the spot.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import socket
import ssl
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaos.adapters.local.proxy_toxics import Toxic

CERTIFICATES = ("expired", "not_yet_valid", "wrong_host", "self_signed", "untrusted_ca",
                "weak_key")
HELLO_TIMEOUT = 30.0
HANDSHAKE_TIMEOUT = 10.0
WRONG_HOST = "wrong-host.chaos.invalid"


def _name(host: str) -> Any:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _issue(subject: str, key: Any, issuer: tuple[Any, Any] | None, hosts: list[str],
           days: tuple[int, int], ca: bool = False) -> Any:
    """A certificate for `key`, signed by issuer (cert, key) or by itself."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer[0].subject if issuer else name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now + datetime.timedelta(days=days[0]))
               .not_valid_after(now + datetime.timedelta(days=days[1]))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName([_name(h) for h in hosts]),
                                        critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _key(weak: bool = False) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if weak:
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return ec.generate_private_key(ec.SECP256R1())


def certificate(kind: str, host: str, ca_cert: str | None = None,
                ca_key: str | None = None) -> tuple[bytes, bytes]:
    """(certificate chain PEM, key PEM) showing exactly the fault `kind` for `host`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if kind not in CERTIFICATES:
        raise ValueError(f"certificate must be one of {', '.join(CERTIFICATES)}, got {kind!r}")
    if ca_cert and ca_key and kind != "untrusted_ca":
        with open(ca_cert, "rb") as cert_file, open(ca_key, "rb") as key_file:
            issuer = (x509.load_pem_x509_certificate(cert_file.read()),
                      serialization.load_pem_private_key(key_file.read(), None))
    else:
        ca_key_made = _key()
        issuer = (_issue("chaos untrusted CA", ca_key_made, None, [], (-1, 30), ca=True),
                  ca_key_made)
    key = _key(weak=kind == "weak_key")
    hosts = [WRONG_HOST] if kind == "wrong_host" else [host]
    days = {"expired": (-30, -1), "not_yet_valid": (1, 30)}.get(kind, (-1, 30))
    leaf = _issue(hosts[0], key, None if kind == "self_signed" else issuer, hosts, days)
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return leaf.public_bytes(pem), key_pem


class Terminator:
    """Serves one tls_certificate toxic: a TLS listener on loopback with the fault's
    certificate. Connections it hits are relayed (bytes, as ever) to this listener instead of
    the upstream; it decrypts and forwards to the upstream."""

    def __init__(self, context: ssl.SSLContext, upstream: tuple[str, int],
                 upstream_tls: bool) -> None:
        self.context, self.upstream, self.upstream_tls = context, upstream, upstream_tls
        self.address = ("127.0.0.1", 0)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context,
                                                  ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        self.address = self._server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        client: ssl.SSLContext | None = None
        if self.upstream_tls:
            client = ssl.create_default_context()
            client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(
                *self.upstream, ssl=client, server_hostname=self.upstream[0] if client else None),
                HANDSHAKE_TIMEOUT)
        except (OSError, TimeoutError, ssl.SSLError):
            writer.transport.abort()
            self._tasks.discard(task)
            return
        sending = asyncio.create_task(_copy(reader, up_writer))
        try:  # TLS cannot half-close: once the upstream is done, so is the connection
            with contextlib.suppress(OSError, ssl.SSLError):
                await _copy(up_reader, writer)
        finally:
            sending.cancel()
            for w in (writer, up_writer):
                w.transport.abort()
            self._tasks.discard(task)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(64 * 1024):
        writer.write(data)
        await writer.drain()
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()


async def terminator(toxic: Toxic, listen_host: str, upstream: tuple[str, int]) -> Terminator:
    """Make the certificate of a tls_certificate toxic and start serving it (ValueError says
    what is wrong)."""
    rule: Mapping[str, Any] = toxic.rule or {}
    try:
        chain, key = certificate(str(rule.get("certificate")), str(rule.get("host") or
                                                                    listen_host),
                                 rule.get("ca_cert"), rule.get("ca_key"))
    except (OSError, TypeError) as exc:
        raise ValueError(f"cannot make the certificate: {exc}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the proxy serve a weak key
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o700)
        paths = [os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")]
        for path, data in zip(paths, (chain, key)):
            with open(path, "wb") as out:
                out.write(data)
        context.load_cert_chain(*paths)
    term = Terminator(context, upstream, bool(rule.get("upstream_tls", True)))
    await term.start()
    return term


def reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def opening(toxics: list[Toxic], terminators: Mapping[str, Terminator],
                  reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> tuple[str, int] | None:
    """Apply the TLS toxics hitting a new connection, before relaying starts. Returns where to
    relay it to (a terminator; None: the upstream). ConnectionAbortedError: it was reset."""
    kinds = {t.kind: t for t in toxics}
    if "tls_reset_handshake" in kinds:
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(reader.read(1), HELLO_TIMEOUT)  # the ClientHello arrives
        reset(writer)
        raise ConnectionAbortedError
    if "tls_handshake_delay" in kinds:
        await asyncio.sleep(float(kinds["tls_handshake_delay"].params.get("delay", 0.0)))
    cert = kinds.get("tls_certificate")
    if cert is None or cert.id not in terminators:
        return None
    return terminators[cert.id].address
