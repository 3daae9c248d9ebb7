"""Webhook notifications: a game day started, finished, was aborted, or a scheduled run was missed.

Delivery must never hurt the game day: each POST runs in a daemon thread with its own timeout,
`send` returns at once (a signal's reverts are never queued behind a slow webhook), and a
failure is logged and printed, never raised. The payloads are documented in docs/gamedays.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chaos import __version__
from chaos.errors import truncate
from chaos.model.gameday import Webhook

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, webhooks: Sequence[Webhook],
                 warn: Callable[[str], None] | None = None) -> None:
        self.webhooks = tuple(webhooks)
        self.warn = warn
        self._pending: set[asyncio.Future[None]] = set()
        self.failures = 0

    def send(self, event: str, payload: Mapping[str, Any]) -> None:
        """Start delivering `gameday.EVENT` to every webhook that wants it; do not wait."""
        body = json.dumps({"event": f"gameday.{event}", "sent": time.time(),
                           "tool": {"name": "chaos", "version": __version__}, **payload},
                          default=str).encode()
        for hook in self.webhooks:
            if event in hook.events:
                self._pending.add(self._deliver(hook, body, event))

    def _deliver(self, hook: Webhook, body: bytes, event: str) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def report(error: str | None) -> None:
            if error is not None:
                self.failures += 1
                message = f"webhook {hook.url} ({event}) failed: {error}; the game day goes on"
                log.warning("%s", message)
                if self.warn is not None:
                    self.warn(message)
            if not done.done():
                done.set_result(None)

        def post() -> None:
            error = deliver(hook, body)
            try:
                loop.call_soon_threadsafe(report, error)
            except RuntimeError:  # the loop is gone: the game day ended without waiting
                pass

        # a daemon thread, not the loop's executor: asyncio.run would wait for a stuck POST
        threading.Thread(target=post, name=f"webhook {event}", daemon=True).start()
        done.add_done_callback(self._pending.discard)
        return done

    async def drain(self) -> None:
        """Wait for deliveries still in flight, at most the longest webhook timeout (+1 s)."""
        if not self._pending:
            return
        limit = max(hook.timeout for hook in self.webhooks) + 1.0
        await asyncio.wait(set(self._pending), timeout=limit)


def deliver(hook: Webhook, body: bytes) -> str | None:
    """POST the body; None on a 2xx answer, else why not (truncated: bodies can hold secrets)."""
    request = urllib.request.Request(hook.url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": f"chaos/{__version__}",
        **hook.headers})
    try:
        with urllib.request.urlopen(request, timeout=hook.timeout) as answer:
            answer.read(65536)
            return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {truncate(exc.reason or '', 80)}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return truncate(f"{type(reason).__name__}: {reason}", 160)
