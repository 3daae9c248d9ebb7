"""Grafana annotations: the run and each fault's window as regions on the team's dashboards.

An event subscriber. It posts to Grafana's annotation API (`POST /api/annotations` with `time`,
`timeEnd` in epoch milliseconds, `tags`, `text`, optionally `dashboardUID` and `panelId`; the
answer's `id` is then patched with `PATCH /api/annotations/:id`): a region per fault from
injection to its planned end, its end moved to the actual revert; a region for the run, closed
with the verdict. Requests (chaos.slo.http_client) go out one after another from a daemon
thread with a timeout each, so a slow or hung Grafana never blocks the engine or a revert;
failures are logged and counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

from chaos import __version__
from chaos.errors import truncate
from chaos.runner.events import Event
from chaos.slo.http_client import Client, HttpFailed, request

log = logging.getLogger(__name__)

Request = tuple[str, str, dict[str, Any], str | None]  # method, path ("{id:KEY}"), body, key


class GrafanaAnnotations:
    def __init__(self, settings: Mapping[str, Any],
                 warn: Callable[[str], None] | None = None) -> None:
        self.url = str(settings["url"]).rstrip("/")
        self.token = settings.get("token")
        self.timeout = float(settings.get("timeout") or 5.0)
        self.scope: dict[str, Any] = {}
        if settings.get("dashboard_uid"):
            self.scope["dashboardUID"] = settings["dashboard_uid"]
            if settings.get("panel_id"):
                self.scope["panelId"] = int(settings["panel_id"])
        self.tags = ["chaos", *settings.get("tags", ())]
        self.warn = warn
        self.failures = 0
        self.ids: dict[str, int] = {}  # our key (run, injection id) -> Grafana's annotation id
        self._queue: queue.Queue[Request | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="grafana", daemon=True)
        self._thread.start()
        self._run = ""
        self._title = ""

    # --- events -> requests
    def __call__(self, event: Event) -> None:
        d, ms = event.data, int(event.ts * 1000)
        if event.name == "run.started":
            self._run, self._title = str(d["run"]), str(d.get("title") or "")
            self._post("run", ms, ms, [f"run:{self._run}"], f"chaos run: {self._title}")
        elif event.name == "fault.injected":
            end = int(float(d.get("deadline") or event.ts) * 1000)
            self._post(d["injection"], ms, end,
                       [f"run:{self._run}", f"fault:{d['fault']}", f"type:{d['type']}"],
                       f"{d['fault']} ({d['type']}) on {d['target']}")
        elif event.name in ("fault.reverted", "fault.revert_failed"):
            outcome = d.get("outcome", "revert failed") if event.name == "fault.reverted" \
                else "REVERT FAILED: " + str(d.get("error", ""))
            self._queue.put(("PATCH", "/api/annotations/{id}", {
                "timeEnd": ms, "text": f"{d['fault']} on {d['target']}: {outcome}"},
                d["injection"]))
        elif event.name == "run.finished":
            self._queue.put(("PATCH", "/api/annotations/{id}", {
                "timeEnd": ms, "tags": [*self.tags, f"run:{self._run}",
                                        f"verdict:{d['verdict']}"],
                "text": f"chaos run: {self._title}: {d['verdict']} (exit {d['exit_code']})"},
                "run"))

    def _post(self, key: str, start: int, end: int, tags: list[str], text: str) -> None:
        self._queue.put(("POST", "/api/annotations", {
            **self.scope, "time": start, "timeEnd": max(start, end),
            "tags": [*self.tags, *tags], "text": text}, key))

    # --- delivery, in order, beside the run
    def _work(self) -> None:
        while (request := self._queue.get()) is not None:
            try:
                self._send(*request)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _send(self, method: str, path: str, body: dict[str, Any], key: str | None) -> None:
        if "{id}" in path:
            if key not in self.ids:
                return  # its POST failed: nothing to update
            path = path.replace("{id}", str(self.ids[key]))
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        settings = Client(agent=f"chaos/{__version__}", timeout=self.timeout,
                          proxies_from_env=True)
        try:
            # this delivery thread's own event loop: the run's loop never waits for Grafana
            reply = asyncio.run(request(self.url + path, method=method, headers=headers,
                                        body=json.dumps(body).encode(), settings=settings,
                                        limit=65536)).raise_for_status()
            answer = json.loads(reply.body or b"{}")
            if method == "POST" and key is not None and isinstance(answer.get("id"), int):
                self.ids[key] = answer["id"]
        except (HttpFailed, ValueError, AttributeError) as exc:
            # ValueError, AttributeError: an answer that is not Grafana's JSON object
            self.failures += 1
            reason = str(exc) if isinstance(exc, HttpFailed) else \
                truncate(f"{type(exc).__name__}: {exc}", 160)
            message = f"Grafana annotation ({method} {path}) failed: {reason}; the run goes on"
            log.warning("%s", message)
            if self.warn is not None:
                self.warn(message)

    def close(self, wait: float) -> None:
        """Let queued requests go out for at most `wait` seconds, then leave the rest."""
        self._queue.put(None)
        self._thread.join(wait)
