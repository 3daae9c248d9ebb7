"""A self-signed certificate for 127.0.0.1 made by the openssl program, as an operator would:
the `certificate` fixture, for tests of probes and of the Prometheus client against servers
behind TLS. (tls_material.py makes a CA and a signed certificate with `cryptography` instead.)
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.system_tools import tool


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made by openssl for this test run."""
    openssl = tool("openssl")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30)
    return cert, key
