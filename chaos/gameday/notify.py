"""Webhook notifications: a game day started, finished, was aborted, or a scheduled run was missed;
and, for every `chaos run` with a `notify:` section, a run started, breached a guardrail, was
aborted or finished (`RunNotifications`, an event subscriber).

Delivery must never hurt the game day: each POST (chaos.slo.http_client) runs in a daemon
thread with its own timeout, `send` returns at once (a signal's reverts are never queued behind
a slow webhook), and a failure is logged and printed, never raised. The payloads are documented in docs/gamedays.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chaos import __version__
from chaos.errors import truncate
from chaos.model.experiment import Webhook
from chaos.slo.http_client import Client, HttpFailed, request

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, webhooks: Sequence[Webhook],
                 warn: Callable[[str], None] | None = None, kind: str = "gameday") -> None:
        self.webhooks = tuple(webhooks)
        self.warn = warn
        self.kind = kind  # event names are KIND.EVENT: gameday.started, run.breach
        self._pending: set[asyncio.Future[None]] = set()
        self.failures = 0

    def send(self, event: str, payload: Mapping[str, Any]) -> None:
        """Start delivering `KIND.EVENT` to every webhook that wants it; do not wait."""
        document = {"event": f"{self.kind}.{event}", "sent": time.time(),
                    "tool": {"name": "chaos", "version": __version__}, **payload}
        for hook in self.webhooks:
            if event in hook.events:
                shaped = slack(document) if hook.format == "slack" else document
                body = json.dumps(shaped, default=str).encode()
                self._pending.add(self._deliver(hook, body, event))

    def _deliver(self, hook: Webhook, body: bytes, event: str) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def report(error: str | None) -> None:
            if error is not None:
                self.failures += 1
                message = (f"webhook {hook.url} ({event}) failed: {error}; the "
                           f"{'game day' if self.kind == 'gameday' else 'run'} goes on")
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
    """POST the body; None on a 2xx answer, else why not (truncated: bodies can hold secrets).
    Blocking: it runs in its delivery thread, on that thread's own event loop."""
    settings = Client(agent=f"chaos/{__version__}", timeout=hook.timeout, proxies_from_env=True)
    try:
        asyncio.run(request(hook.url, method="POST", body=body, settings=settings,
                            limit=65536, headers={"Content-Type": "application/json",
                                                  **hook.headers})).raise_for_status()
    except HttpFailed as exc:
        return truncate(str(exc), 160)
    return None


HEADLINES = {
    "gameday.started": "Game day started", "gameday.finished": "Game day finished",
    "gameday.aborted": "Game day aborted", "gameday.missed": "Game day run missed",
    "run.started": "Experiment started", "run.breach": "Guardrail breached",
    "run.aborted": "Experiment aborted", "run.finished": "Experiment finished",
}


def slack(document: Mapping[str, Any]) -> dict[str, Any]:
    """The payload as a Slack incoming webhook takes it: `text` (the notification, and the
    fallback) and `blocks` (a header-like section and the facts as fields)."""
    event = str(document.get("event", ""))
    title = str(document.get("title") or "")
    headline = f"{HEADLINES.get(event, event)}: {title}" if title else HEADLINES.get(event, event)
    facts = [(k, document[k]) for k in ("verdict", "exit_code", "check", "reason", "run",
                                         "source") if document.get(k) not in (None, "")]
    text = headline + "".join(f" · {k}: {v}" for k, v in facts[:2])
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_escape(headline)}*"}}]
    if facts:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{k}*\n{_escape(truncate(str(v), 1900))}"}
            for k, v in facts[:10]]})  # Slack takes at most 10 fields of 2000 characters
    return {"text": text, "blocks": blocks}


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters (https://api.slack.com/reference/surfaces/formatting)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class RunNotifications:
    """An event subscriber that tells a run's webhooks: started, breach, aborted, finished."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self._about: dict[str, Any] = {}

    def __call__(self, event: Any) -> None:
        d = event.data
        if event.name == "run.started":
            self._about = {"run": d.get("run"), "title": d.get("title"),
                           "source": d.get("source")}
            self.notifier.send("started", dict(self._about))
        elif event.name == "guardrail.breached":
            self.notifier.send("breach", {**self._about, "check": d.get("check"),
                                          "verdict": (d.get("verdict") or {}).get("status"),
                                          "measured": (d.get("verdict") or {}).get("measured")})
        elif event.name == "run.finished":
            result = {**self._about, "verdict": d.get("verdict"),
                      "exit_code": d.get("exit_code"), "reason": d.get("reason")}
            if d.get("verdict") == "aborted":
                self.notifier.send("aborted", result)
            self.notifier.send("finished", result)
