"""Prometheus as most teams run it in production: behind TLS signed by a private CA and asking
for credentials. A real Prometheus (Debian's binary, `--web.config.file`) serves https with a
certificate made by openssl for this run and basic auth; our client trusts it through
`prometheus.ca_file` and sends `prometheus.headers`. An untrusted certificate and refused
credentials are errors that say which setting to fix, and a whole `chaos run` judges its checks
from such a Prometheus, with the credentials from a variable."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.slo.prometheus import Prometheus, QueryFailed
from tests.conftest import free_port, run_chaos
from tests.support.openssl_certificate import certificate

__all__ = ["certificate"]  # the fixture: a self-signed certificate for 127.0.0.1

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.needs("prometheus")

USER, PASSWORD = "sre", "not-a-real-secret"
# bcrypt of PASSWORD (cost 4), as Prometheus' web config wants it; made once with the bcrypt
# package so the tests need no bcrypt of their own
BCRYPT = "$2b$04$qePH/RoN0izVZjV6Nxg0NepKEVFhq1eEjVIZhZgz1JTfsBmRSAMEW"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@pytest.fixture(scope="module")
def secured(certificate: tuple[Path, Path],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The https URL of a Prometheus that needs the CA and the credentials."""
    cert, key = certificate
    tmp = tmp_path_factory.mktemp("prometheus-tls")
    (tmp / "prometheus.yml").write_text("global: {scrape_interval: 1m}\n")
    (tmp / "web.yml").write_text(json.dumps({
        "tls_server_config": {"cert_file": str(cert), "key_file": str(key)},
        "basic_auth_users": {USER: BCRYPT}}))
    port = free_port()
    prom = subprocess.Popen([PROMETHEUS or "prometheus", f"--config.file={tmp}/prometheus.yml",
                             f"--storage.tsdb.path={tmp}/data", f"--web.config.file={tmp}/web.yml",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"https://127.0.0.1:{port}"
    trusted = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                ready = urllib.request.Request(f"{url}/-/ready", headers={"Authorization": AUTH})
                with urllib.request.urlopen(ready, timeout=1, context=trusted) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("Prometheus did not become ready within 30 s")
        yield url
    finally:
        prom.terminate()
        prom.wait(10)


def ask(source: Prometheus, query: str = "vector(42)") -> float | None:
    return asyncio.run(source.scalar(query))


def test_answers_through_the_ca_file_and_the_headers(secured: str,
                                                     certificate: tuple[Path, Path]) -> None:
    source = Prometheus(secured, None, None, None, headers={"Authorization": AUTH},
                        ca_file=str(certificate[0]))
    assert ask(source) == 42.0


def test_an_untrusted_certificate_names_the_setting_to_fix(secured: str) -> None:
    with pytest.raises(QueryFailed) as refused:
        ask(Prometheus(secured, None, None, None, headers={"Authorization": AUTH}))
    assert f"cannot trust Prometheus at {secured}" in str(refused.value)
    assert "set prometheus.ca_file" in str(refused.value)
    unverified = Prometheus(secured, None, None, None, headers={"Authorization": AUTH},
                            verify_tls=False)
    assert ask(unverified) == 42.0


def test_refused_credentials_say_so(secured: str, certificate: tuple[Path, Path]) -> None:
    wrong = "Basic " + base64.b64encode(f"{USER}:guess".encode()).decode()
    for headers in ({}, {"Authorization": wrong}):
        with pytest.raises(QueryFailed) as refused:
            ask(Prometheus(secured, None, None, None, headers=headers,
                           ca_file=str(certificate[0])))
        assert "HTTP 401" in str(refused.value)
        assert "check prometheus.headers" in str(refused.value)


EXPERIMENT = """\
title: checks judged by a Prometheus behind TLS and basic auth
hypothesis:
  prometheus:
    url: {url}
    ca_file: {ca}
    headers: {{Authorization: "Basic ${{PROM_AUTH}}"}}
    good: vector(990)
    total: vector(1000)
  checks: [availability >= 98%]
  before: {{window: 1s}}
  after: {{settle: 0s, window: 1s}}
"""


def test_a_run_judges_its_checks_from_the_secured_prometheus(
        secured: str, certificate: tuple[Path, Path], tmp_path: Path, state_dir: Path) -> None:
    shutil.copy(certificate[0], tmp_path / "ca.pem")
    path = tmp_path / "experiment.yaml"
    path.write_text(EXPERIMENT.format(url=secured, ca="ca.pem"))  # relative to the file
    credentials = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    result = run_chaos("run", str(path), "--var", f"PROM_AUTH={credentials}")
    assert result.returncode == 0, result.stdout + result.stderr
    journal = json.loads(next((tmp_path / "runs").glob("*/journal.json")).read_text())
    [check] = journal["phases"]["before"]["checks"]
    assert check["status"] == "PASS" and check["value"] == pytest.approx(0.99), check
    assert check["source"] == f"prometheus:{secured}"
    # the credentials came in a variable whose name says so: never written down
    assert journal["experiment"]["variables"] == {"PROM_AUTH": "***"}
    written = "".join(p.read_text() for p in (tmp_path / "runs").rglob("*") if p.is_file())
    assert credentials not in written
    refused = run_chaos("run", str(path), "--var", "PROM_AUTH=bm9ib2R5Omd1ZXNz")
    assert refused.returncode == 3, refused.stdout + refused.stderr  # steady state not met
    assert "HTTP 401" in refused.stdout + refused.stderr


def test_a_missing_ca_file_or_credential_is_refused_where_it_is_named(tmp_path: Path) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_text(EXPERIMENT.format(url="https://127.0.0.1:9", ca="nowhere/ca.pem"))
    result = run_chaos("validate", str(path), "--var", "PROM_AUTH=x")
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert f"{path}:5:" in out and "hypothesis.prometheus.ca_file" in out, out
    assert "nowhere/ca.pem" in out and "Traceback" not in out
    unset = run_chaos("validate", str(path))  # the whole section is refused: said once
    out = unset.stdout + unset.stderr
    assert unset.returncode == 2 and "internal error" not in out, out
    assert f"{path}:6:" in out and "variable ${PROM_AUTH} is not set" in out, out
    assert "1 problem" in out and "needs prometheus.good" not in out, out


def test_a_ca_file_that_holds_no_certificate_is_refused_at_validate_time(
        tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    # the server's key named by mistake: refused where it is named, not as an ERROR per window
    shutil.copy(certificate[1], tmp_path / "server.key")
    path = tmp_path / "experiment.yaml"
    path.write_text(EXPERIMENT.format(url="https://127.0.0.1:9", ca="server.key"))
    result = run_chaos("validate", str(path), "--var", "PROM_AUTH=x")
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert f"{path}:5:" in out and "hypothesis.prometheus.ca_file" in out, out
    assert "holds no usable CA certificate" in out and "Traceback" not in out, out
    shutil.copy(certificate[0], tmp_path / "server.key")  # a certificate after all
    assert run_chaos("validate", str(path), "--var", "PROM_AUTH=x").returncode == 0
