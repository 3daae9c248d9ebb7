"""The payments dependency over HTTPS, for the certificate-expiry scenario: it makes a private CA
and a valid certificate for its address in --dir (ca.pem, ca.key, the CA a client trusts and
the fault signs its bad certificate with), then serves HTTPS with that certificate, so the
certificate is the only thing the rehearsal changes.

    GET /health   200 "ok"
    GET /         200 {"service": "payments", "tls": true}

    python -m chaos.demo.tls_service --port 18340 --dir /tmp/chaos-payments-tls

Files already in --dir are reused (a restarted service keeps its CA). Needs `cryptography`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import os
import ssl
import sys
from typing import Any

from chaos.demo.serving import serve_until_signalled


def _issue(common_name: str, key: Any, issuer: tuple[Any, Any] | None, host: str | None) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_name, issuer_key = issuer if issuer else (name, key)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None),
                              critical=True))
    if host is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def material(directory: str, host: str) -> tuple[str, str]:
    """ca.pem/ca.key (made once) and server.pem/server.key for `host`: the server's paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def pem_key(key: Any) -> bytes:
        return bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))

    os.makedirs(directory, exist_ok=True)
    paths = {n: os.path.join(directory, n) for n in ("ca.pem", "ca.key", "server.pem",
                                                     "server.key")}
    if not all(os.path.exists(p) for p in paths.values()):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _issue("chaos rehearsal CA", ca_key, None, None)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(host, key, (ca.subject, ca_key), host)
        for name, data in (("ca.key", pem_key(ca_key)), ("server.key", pem_key(key)),
                           ("ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
                           ("server.pem", cert.public_bytes(serialization.Encoding.PEM))):
            with open(os.open(paths[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                      "wb") as file:
                file.write(data)
    x509.load_pem_x509_certificate(open(paths["server.pem"], "rb").read())  # readable
    return paths["server.pem"], paths["server.key"]


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while request := await reader.readline():
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            path = request.split()[1] if len(request.split()) > 1 else b"/"
            body = b'"ok"' if path == b"/health" else b'{"service": "payments", "tls": true}'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
        return
    finally:
        writer.close()


async def serve(args: argparse.Namespace) -> None:
    cert, key = material(args.dir, args.host)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = await asyncio.start_server(handle, args.host, args.port, ssl=context,
                                        reuse_address=True)
    print(f"chaos demo payments on https://{args.host}:{args.port} (CA {args.dir}/ca.pem)",
          flush=True)
    await serve_until_signalled(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.demo.tls_service", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="an IP address (the cert's SAN)")
    parser.add_argument("--port", type=int, default=18340)
    parser.add_argument("--dir", required=True, help="where the CA and certificate go")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
