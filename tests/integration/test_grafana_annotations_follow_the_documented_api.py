"""Grafana annotations, checked against the request shape of Grafana's HTTP API documentation
(Annotations API: `POST /api/annotations` with `dashboardUID`, `panelId`, `time`, `timeEnd` in
epoch milliseconds, `tags`, `text`, answered with `{"message": "Annotation added", "id": N}`;
`PATCH /api/annotations/:id` with the fields to change; a service account token as
`Authorization: Bearer`). Grafana itself cannot be installed here: a recording server answers
as the documentation says. A Grafana that never answers delays no revert."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.conftest import release, run_chaos, serving

DOCUMENTED_POST = {"dashboardUID", "panelId", "time", "timeEnd", "tags", "text"}
DOCUMENTED_PATCH = {"time", "timeEnd", "tags", "text"}


class _Grafana(http.server.BaseHTTPRequestHandler):
    server: GrafanaServer

    def _record(self) -> dict[str, Any]:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        with self.server.lock:
            self.server.requests.append((self.command, self.path, dict(self.headers), body))
        return dict(body)

    def _answer(self, reply: dict[str, Any]) -> None:
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self._record()
        with self.server.lock:
            self.server.next_id += 1
            ident = self.server.next_id
        self._answer({"message": "Annotation added", "id": ident})

    def do_PATCH(self) -> None:
        self._record()
        self._answer({"message": "Annotation patched"})

    def log_message(self, format: str, *args: Any) -> None:
        pass


class GrafanaServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Grafana)
        self.lock = threading.Lock()
        self.next_id = 100
        self.requests: list[tuple[str, str, dict[str, str], dict[str, Any]]] = []


def experiment(tmp_path: Path, pid: int, url: str) -> Path:
    path = tmp_path / "annotated.yaml"
    path.write_text(f"""title: annotated on the dashboards
vars: {{GRAFANA_TOKEN: sa-token-1234}}
faults:
  - name: freeze
    type: process.suspend
    target: {{process: {{pid: {pid}}}}}
    duration: 2s
grafana:
  url: "{url}"
  token: "${{GRAFANA_TOKEN}}"
  dashboard_uid: chaos-board
  panel_id: 4
  tags: [team-checkout]
  timeout: 2s
""")
    return path


def test_fault_windows_and_verdicts_are_posted_as_documented(tmp_path: Path,
                                                            state_dir: Path) -> None:
    victim = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)"])
    try:
        with serving(server=GrafanaServer()) as grafana:
            url = f"http://127.0.0.1:{grafana.server_address[1]}"
            before = time.time() * 1000
            result = run_chaos("run", str(experiment(tmp_path, victim.pid, url)), timeout=120)
            after = time.time() * 1000
            assert result.returncode == 0, result.stdout + result.stderr
            requests = list(grafana.requests)
    finally:
        release(victim)
    text = next((tmp_path / "runs").glob("*/journal.json")).read_text()
    assert "sa-token-1234" not in text  # the token stays out of the records
    journal = json.loads(text)
    run = journal["run"]
    posts = [r for r in requests if r[0] == "POST"]
    patches = [r for r in requests if r[0] == "PATCH"]
    assert [p[1] for p in posts] == ["/api/annotations", "/api/annotations"]
    for _, _, headers, body in requests:
        assert headers["Authorization"] == "Bearer sa-token-1234"
        assert headers["Content-Type"] == "application/json"
    run_post, fault_post = (p[3] for p in posts)
    for body in (run_post, fault_post):
        assert set(body) <= DOCUMENTED_POST, set(body) - DOCUMENTED_POST
        assert body["dashboardUID"] == "chaos-board" and body["panelId"] == 4
        assert isinstance(body["time"], int) and isinstance(body["timeEnd"], int)
        assert before <= body["time"] <= body["timeEnd"] <= after + 60_000  # epoch ms
        assert all(isinstance(t, str) for t in body["tags"]) and isinstance(body["text"], str)
        assert {"chaos", "team-checkout", f"run:{run}"} <= set(body["tags"])
    assert {"fault:freeze", "type:process.suspend"} <= set(fault_post["tags"])
    # the fault's region: planned end at injection, moved to the actual revert (id 102)
    assert fault_post["timeEnd"] - fault_post["time"] >= 2000
    fault_patch = next(p for p in patches if p[1] == "/api/annotations/102")
    assert set(fault_patch[3]) <= DOCUMENTED_PATCH
    assert 1500 <= fault_patch[3]["timeEnd"] - fault_post["time"] <= 4000  # reverted after ~2s
    # the run's region, closed with the verdict (id 101)
    run_patch = next(p for p in patches if p[1] == "/api/annotations/101")
    assert set(run_patch[3]) <= DOCUMENTED_PATCH
    assert "verdict:held" in run_patch[3]["tags"] and run_patch[3]["timeEnd"] <= after


def test_a_grafana_that_never_answers_delays_no_revert(tmp_path: Path, state_dir: Path) -> None:
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    victim = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)"])
    try:
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        result = run_chaos("run", str(experiment(tmp_path, victim.pid, url)), timeout=120)
    finally:
        hung.close()
        release(victim)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Grafana annotation" in result.stderr  # said, not hidden
    journal = json.loads(next((tmp_path / "runs").glob("*/journal.json")).read_text())
    (injection,) = journal["injections"]
    assert injection["outcome"] == "reverted"
    assert 1.5 <= injection["reverted_at"] - injection["injected_at"] <= 2.5  # on schedule
