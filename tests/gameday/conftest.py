"""Game-day fixtures: a webhook receiver on 127.0.0.1, game-day files written for a test."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import http.server
import itertools
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
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


class VirtualTime:
    """A clock that moves only when the test says so; sleepers wake when it passes them."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + timedelta(seconds=seconds),
                                        next(self._order), future))
        await future

    async def advance_to(self, when: datetime) -> None:
        while self._sleepers and self._sleepers[0][0] <= when:
            at, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, at)
            if not future.done():
                future.set_result(None)
            for _ in range(20):  # let the woken tasks run until they sleep again
                await asyncio.sleep(0)
        self.now = when
        for _ in range(20):
            await asyncio.sleep(0)
