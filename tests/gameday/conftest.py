"""Game-day fixtures: a webhook receiver on 127.0.0.1, game-day files written for a test."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, serving

FIXTURES = Path(__file__).parent / "fixtures"
GAMEDAYS = ROOT / "gamedays"
# urllib honours *_proxy variables; the tests talk to 127.0.0.1 only
NO_PROXY = {"no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}


class _Hook(http.server.BaseHTTPRequestHandler):
    server: WebhookServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.startswith("/slow"):
            time.sleep(3)  # longer than the webhook's timeout in the test
        with self.server.lock:
            self.server.received.append((self.path, dict(self.headers), json.loads(body)))
        status = 500 if self.path.startswith("/broken") else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class WebhookServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.lock = threading.Lock()
        self.received: list[tuple[str, dict[str, str], dict[str, Any]]] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def events(self, path: str = "/hook") -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, _, body in self.received if p == path]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the slow route) is expected


def receiving() -> contextlib.AbstractContextManager[WebhookServer]:
    return serving(server=WebhookServer())


@pytest.fixture
def webhooks() -> Iterator[WebhookServer]:
    with receiving() as server:
        yield server


def write_gameday(directory: Path, text: str, name: str = "gameday.yaml") -> Path:
    """A game-day file in `directory`; `{fixtures}` and `{experiments}` become absolute paths."""
    path = directory / name
    path.write_text(text.replace("{fixtures}", str(FIXTURES)).replace(
        "{experiments}", str(ROOT / "experiments")))
    return path
