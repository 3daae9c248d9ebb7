"""The exec websocket's handshake limit: the kubernetes client offers no per-call setting, so
chaos swaps the websocket class its `create_websocket` instantiates for one that applies the
limit only inside `websocket_handshake_within` on the calling thread. These tests fail when a
client release moves that attribute (the limit would silently vanish) or when the limit leaks
to other callers of the client in the same process.

(test_container_kill_falls_back_to_exec.py shows the limit at work against a silent upgrade.)
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import websocket
from kubernetes.stream import ws_client

from chaos.adapters.kubernetes import connection


def test_the_client_still_opens_exec_websockets_through_the_swapped_name() -> None:
    assert "WebSocket" in ws_client.create_websocket.__code__.co_names, \
        "create_websocket no longer instantiates ws_client.WebSocket: move the handshake limit"
    assert connection._install_bounded_websocket() is True
    assert issubclass(ws_client.WebSocket, websocket.WebSocket)
    assert getattr(ws_client.WebSocket, "chaos_bounded", False)


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The options each websocket connect got, recorded instead of connecting."""
    seen: list[dict[str, Any]] = []

    def record(self: websocket.WebSocket, url: str, **options: Any) -> None:
        seen.append(options)

    monkeypatch.setattr(websocket.WebSocket, "connect", record)
    return seen


def test_the_limit_applies_inside_the_block_and_nowhere_else(
        connects: list[dict[str, Any]]) -> None:
    connection._install_bounded_websocket()
    ws_client.WebSocket().connect("ws://127.0.0.1:1/", header=[])
    with connection.websocket_handshake_within(2.5):
        ws_client.WebSocket().connect("ws://127.0.0.1:1/", header=[])
        other = threading.Thread(
            target=lambda: ws_client.WebSocket().connect("ws://127.0.0.1:1/", header=[]))
        other.start()
        other.join(5)
    ws_client.WebSocket().connect("ws://127.0.0.1:1/", header=[])
    assert [c.get("timeout") for c in connects] == [None, 2.5, None, None]
