"""The one HTTP client of chaos: probes, Prometheus, Alertmanager, webhooks and Grafana.

Every request that is not the load generator's goes through `request()`: one client built by
`client()` (TLS from the system's trust store, a CA file for a private PKI, a client
certificate, or no verification when the experiment says so), and one place, `_mapped()`,
that turns httpx's exceptions into ours:

    ProbeError (chaos.errors)
     └── HttpFailed               no usable answer; the message is truncated and redacted
          ├── Unreachable         no connection, or not HTTP that came back (`refused` says
          │    │                  whether the port actually said no)
          │    └── Untrusted      the server's certificate was refused (`reason`)
          ├── TimedOut            httpx's own limit (callers set theirs with asyncio.timeout)
          └── HttpStatus          `Reply.raise_for_status()`: not 2xx (`status`)

A status code is an error only when the caller says so (`raise_for_status`, as httpx does): a
probe accepts whichever codes the experiment lists, and Prometheus explains its own. Credentials in the URL (`user:password@host`) go as basic auth;
they and any header whose name says it is a secret (chaos.model.redaction) are masked in every
message. Bodies are read up to a limit, so a huge answer cannot exhaust the runner. httpx is
imported inside the functions that send: `chaos validate` and `chaos --help` never load it.
The open-model load generator keeps its own connections for its timing (chaos.slo.traffic);
it shares only `tls_context`.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from chaos.errors import ProbeError, truncate
from chaos.model.redaction import Redactor

if TYPE_CHECKING:
    import httpx

MAX_BODY = 256 * 1024


class HttpFailed(ProbeError):
    """No usable answer to an HTTP request."""


class Unreachable(HttpFailed):
    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused  # the port said no (ECONNREFUSED), not a timeout or a bad name


class Untrusted(Unreachable):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # OpenSSL's verify message, e.g. "self-signed certificate"


class TimedOut(HttpFailed):
    pass


class HttpStatus(HttpFailed):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Tls:
    """How to trust the server, and how to prove who we are to it."""

    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None  # a client certificate (PEM), for mutual TLS
    key_file: str | None = None  # its key, when not in cert_file


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes  # at most the request's limit
    reason: str = ""  # the status line's phrase, "Not Found"

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def raise_for_status(self) -> Reply:
        """The reply if 2xx; else HttpStatus (its reason only: bodies can hold secrets)."""
        if not 200 <= self.status < 300:
            raise HttpStatus(f"HTTP {self.status} {truncate(self.reason, 80)}".rstrip(),
                             self.status)
        return self


@dataclass(frozen=True)
class Client:
    """What every request to one endpoint shares."""

    tls: Tls = field(default_factory=Tls)
    agent: str = "chaos-probe"
    timeout: float | None = None  # None: the caller bounds the time (asyncio.timeout)
    proxies_from_env: bool = False  # webhooks and Grafana honour HTTP(S)_PROXY, as curl does


def tls_context(verify: bool = True, ca_file: str | None = None, cert_file: str | None = None,
                key_file: str | None = None) -> ssl.SSLContext:
    """One context per setting: loading a trust store blocks the loop for milliseconds, and an
    https probe runs every few hundred. OpenSSL's own variables are part of the setting."""
    return _context(verify, ca_file, cert_file, key_file, os.environ.get("SSL_CERT_FILE"),
                    os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=16)
def _context(verify: bool, ca_file: str | None, cert_file: str | None, key_file: str | None,
             *_openssl_env: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


def client(settings: Client) -> httpx.AsyncClient:
    """The one place an HTTP client is configured."""
    import httpx

    tls = settings.tls
    return httpx.AsyncClient(
        verify=tls_context(tls.verify, tls.ca_file, tls.cert_file, tls.key_file),
        timeout=httpx.Timeout(settings.timeout), trust_env=settings.proxies_from_env,
        follow_redirects=False, headers={"User-Agent": settings.agent})


def warm() -> None:
    """Load the client before anything is timed: the first probe of a run must not count
    ~0.1 s of imports (or seconds, on a loaded CI machine) as the service's latency."""
    import importlib

    client(Client())
    for backend in ("httpcore._backends.anyio", "anyio._backends._asyncio"):  # loaded on the
        with contextlib.suppress(ImportError):  # first request otherwise
            importlib.import_module(backend)


def shown(url: str) -> str:
    """The URL for messages and journals: a password in it (`https://u:p@host`) masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


async def request(url: str, *, method: str = "GET", headers: Mapping[str, str] | None = None,
                  body: bytes = b"", settings: Client = Client(),
                  limit: int = MAX_BODY) -> Reply:
    """One request, its connection closed after it; HttpFailed when no answer came."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port out of range raises only when read
    except ValueError as exc:  # no URL in the message: it may hold a password
        raise Unreachable(f"not a usable URL: {exc}") from exc
    sent = {"Connection": "close", **(headers or {})}
    if parts.username is not None:
        url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        if not any(k.lower() == "authorization" for k in sent):
            # https://user:password@host/: basic auth, as curl and Prometheus' own clients do
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            sent["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    # header names as variable names (X-Api-Key: X_Api_Key), so that the rule for secret
    # variables (chaos.model.redaction) recognises them
    redactor = Redactor.of({"password": unquote(parts.password or ""),
                            **{k.replace("-", "_"): v for k, v in sent.items()}})
    with _mapped(redactor):
        async with client(settings) as http, \
                http.stream(method, url, headers=sent, content=body) as answer:
            received = bytearray()
            # never more than the limit, also from one huge chunk (Go servers, Prometheus
            # among them, send a whole answer as one chunk)
            async for chunk in answer.aiter_bytes():
                received += chunk[: limit - len(received)]
                if len(received) >= limit:
                    break
            return Reply(answer.status_code, bytes(received), answer.reason_phrase)


@contextlib.contextmanager
def _mapped(redactor: Redactor) -> Iterator[None]:
    """httpx's exceptions -> ours, with the root cause's words (not httpx's wrapping)."""
    import httpx

    try:
        yield
    except httpx.TimeoutException as exc:
        raise TimedOut(_said(redactor, "no answer in time", exc)) from exc
    except (httpx.TransportError, httpx.DecodingError, httpx.InvalidURL) as exc:
        # TransportError: connect, read, protocol and unsupported-scheme failures alike
        root = _root(exc)
        if isinstance(root, ssl.SSLCertVerificationError):
            reason = str(root.verify_message)
            raise Untrusted(_said(redactor, f"certificate refused: {reason}", exc),
                            reason) from exc
        raise Unreachable(_said(redactor, _words(root), exc),
                          refused=isinstance(root, ConnectionRefusedError)) from exc


def _root(exc: BaseException) -> BaseException:
    """The innermost cause: httpx wraps httpcore's error, which wraps the OSError."""
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    return exc


def _words(root: BaseException) -> str:
    return f"{type(root).__name__}: {getattr(root, 'strerror', None) or root}"


def _said(redactor: Redactor, message: str, exc: BaseException) -> str:
    return truncate(redactor.text(message or _words(exc)), 300)
