"""The detection watch against a scripted Alertmanager API v2 (a real HTTP server answering
/api/v2/alerts as Alertmanager 0.25 does), driven in-process through the event bus: silenced and
inhibited alerts are reported as such, an alert that resolved before the last revert counts as
resolved, one that fires again is not, and exactly one request goes out per poll."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from typing import Any

from chaos.model.experiment import AlertRule, Detection
from chaos.runner.detection import AlertWatch
from chaos.runner.events import EventBus
from chaos.slo.checks import Status
from tests.conftest import serving


class _Api(http.server.BaseHTTPRequestHandler):
    server: ScriptedAlertmanager

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests.append(self.path)
            body = json.dumps(self.server.alerts).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class ScriptedAlertmanager(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Api)
        self.lock = threading.Lock()
        self.alerts: list[dict[str, Any]] = []
        self.requests: list[str] = []

    def set(self, *alerts: dict[str, Any]) -> None:
        with self.lock:
            self.alerts = list(alerts)


def alert(name: str, state: str = "active", silenced: bool = False) -> dict[str, Any]:
    return {"labels": {"alertname": name, "severity": "page"}, "annotations": {},
            "startsAt": "2026-12-04T19:00:00.123456789Z", "endsAt": "2026-12-04T20:00:00Z",
            "fingerprint": name, "receivers": [{"name": "team"}], "updatedAt": "",
            "status": {"state": state, "silencedBy": ["abc"] if silenced else [],
                       "inhibitedBy": [] if silenced or state == "active" else ["x"]}}


def rule(name: str) -> AlertRule:
    return AlertRule((("alertname", "=", name),), True, within=10.0, resolves_within=10.0)


async def scenario(api: ScriptedAlertmanager) -> tuple[AlertWatch, list[str]]:
    bus = EventBus()
    names: list[str] = []
    bus.subscribe(lambda e: names.append(e.name))
    watch = AlertWatch(Detection("alertmanager", {"url": f"http://127.0.0.1:"
                                                         f"{api.server_address[1]}"},
                                 0.05, (rule("Silenced"), rule("Flapping"), rule("Early"))),
                       bus)
    await watch.start()
    bus.emit("fault.injected", fault="f", type="process.suspend", injection="r.0.0",
             target="t", duration=1, deadline=0)
    await asyncio.sleep(0.2)
    api.set(alert("Silenced", "suppressed", silenced=True), alert("Flapping"), alert("Early"))
    await asyncio.sleep(0.2)
    api.set(alert("Silenced", "suppressed", silenced=True))  # Flapping and Early resolve...
    await asyncio.sleep(0.2)
    api.set(alert("Silenced", "suppressed", silenced=True), alert("Flapping"))  # Flapping again
    await asyncio.sleep(0.2)
    bus.emit("fault.reverted", fault="f", injection="r.0.0", target="t", outcome="reverted",
             by="runner")
    await asyncio.sleep(0.2)
    await watch.finish((0, ""))  # type: ignore[arg-type]
    return watch, names


def test_states_and_resolution_as_alertmanager_reports_them() -> None:
    with serving(server=ScriptedAlertmanager()) as api:
        watch, names = asyncio.run(scenario(api))
        requests = list(api.requests)
    by_rule = {v.check.text.split(" fires")[0]: v for v in watch.verdicts}
    silenced = by_rule["alert {alertname=Silenced}"]
    assert silenced.status is Status.FAIL  # fired (silenced), but never resolved
    assert watch.seen[0].state == "silenced"
    early = watch.seen[2]
    assert early.resolved is not None and early.resolved < watch.reverted  # type: ignore[operator]
    assert by_rule["alert {alertname=Early}"].status is Status.PASS
    flapping = watch.seen[1]
    assert flapping.firing_now and flapping.resolved is None
    assert by_rule["alert {alertname=Flapping}"].status is Status.FAIL
    assert names.count("alert.measured") == 3
    # one request per poll, each asking for silenced and inhibited alerts too
    assert len(requests) == watch.polls
    assert all("silenced=true" in r and "inhibited=true" in r for r in requests)
