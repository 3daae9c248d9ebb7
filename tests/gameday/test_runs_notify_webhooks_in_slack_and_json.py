"""`notify:` in an experiment: every `chaos run` posts started, breach, aborted and finished to
its webhooks (the game-day notifier, reused), as the documented JSON or shaped for a Slack
incoming webhook (`text` and `blocks`). A webhook that never answers delays no revert: the
suspended service is seen (in /proc) running again on schedule."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import free_port, release, run_chaos
from tests.gameday.conftest import WebhookServer


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_breached_run_notifies_json_and_slack_while_a_hung_webhook_blocks_nothing(
        tmp_path: Path, state_dir: Path, webhooks: WebhookServer) -> None:
    port = free_port()
    service = subprocess.Popen([sys.executable, "-m", "chaos.demo.service", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hung = socket.socket()  # listens, never accepts: the POST is sent and never answered
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        path = tmp_path / "notify.yaml"
        path.write_text(f"""title: the team hears about it
hypothesis:
  probes: [{{name: demo, http: {{url: "http://127.0.0.1:{port}/", timeout: 300ms}}}}]
  before: {{window: 1s, every: 100ms}}
  during: {{every: 100ms, abort: [demo < 50%], window: 1s}}
faults:
  - type: process.suspend
    target: {{process: {{pid: {service.pid}}}}}
    duration: 20s
notify:
  - webhook: {webhooks.url("/hook")}
  - webhook: {webhooks.url("/slack")}
    format: slack
    events: [started, breach, aborted, finished]
  - webhook: http://127.0.0.1:{hung.getsockname()[1]}/never
    timeout: 3s
""")
        started = time.monotonic()
        result = run_chaos("run", str(path), timeout=120)
        assert result.returncode == 4, result.stdout + result.stderr  # aborted by the guardrail
        # the breach reverted at once (not after 20 s), whatever the hung webhook did
        assert _state(service.pid) != "T"
        assert time.monotonic() - started < 20
        assert "webhook http://127.0.0.1:" in result.stderr and "/never" in result.stderr
        # each webhook is posted from its own thread: they may arrive out of order
        events = sorted(webhooks.events("/hook"), key=lambda e: e["sent"])
        assert [e["event"] for e in events] == ["run.started", "run.breach", "run.aborted",
                                                "run.finished"]
        finished = events[-1]
        assert finished["verdict"] == "aborted" and finished["exit_code"] == 4
        assert finished["title"] == "the team hears about it" and finished["run"]
        assert events[1]["check"] == "demo < 50%"
        slack = webhooks.events("/slack")
        assert len(slack) == 4
        for body in slack:
            assert set(body) == {"text", "blocks"} and isinstance(body["text"], str)
            assert body["blocks"][0]["type"] == "section"
            assert body["blocks"][0]["text"]["type"] == "mrkdwn"
        assert slack[1]["text"].startswith("Guardrail breached: the team hears about it")
        fields = {f["text"].split("\n")[0]: f["text"] for f in slack[-1]["blocks"][1]["fields"]}
        assert "*verdict*" in fields and "aborted" in fields["*verdict*"]
    finally:
        hung.close()
        release(service)
