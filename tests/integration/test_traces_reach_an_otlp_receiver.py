"""`chaos run --traces` exports a span tree over OTLP/HTTP to where OTEL_EXPORTER_OTLP_ENDPOINT
says: a small receiver decodes the protobuf (opentelemetry-proto) and finds one run span, its
phases as children, the injection inside the during phase from inject to revert, and the
checks as span events. A collector that never answers delays no revert."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import release, run_chaos, serving
from tests.support.otlp import OtlpReceiver


def experiment(tmp_path: Path, pid: int, health: str) -> Path:
    path = tmp_path / "traced.yaml"
    path.write_text(f"""title: traced
hypothesis:
  probes: [{{name: receiver, tcp: {{address: "{health}"}}}}]
  before: {{window: 500ms, every: 100ms}}
  after: {{settle: 0s, window: 500ms, every: 100ms}}
faults:
  - name: freeze
    type: process.suspend
    target: {{process: {{pid: {pid}}}}}
    duration: 2s
""")
    return path


def test_a_run_exports_its_span_tree(tmp_path: Path, state_dir: Path) -> None:
    victim = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)"])
    try:
        with serving(server=OtlpReceiver()) as receiver:
            host = f"127.0.0.1:{receiver.server_address[1]}"
            result = run_chaos("run", "--traces", str(experiment(tmp_path, victim.pid, host)),
                               env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
                               timeout=120)
            assert result.returncode == 0, result.stdout + result.stderr
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(
                    s.name.startswith("chaos run") for s in receiver.spans):
                time.sleep(0.1)
            roots = receiver.tree()
            paths = list(receiver.paths)
    finally:
        release(victim)
    assert paths and all(p == ("/v1/traces", "application/x-protobuf") for p in paths)
    (run,) = roots
    journal = json.loads(next((tmp_path / "runs").glob("*/journal.json")).read_text())
    assert run.name == "chaos run: traced" and run.service == "chaos"
    assert run.attributes["chaos.run"] == journal["run"]
    assert run.attributes["chaos.verdict"] == "held" and run.status != 2  # not ERROR
    phases = {s.name: s for s in run.children}
    assert set(phases) == {"phase before", "phase during", "phase after"}
    for span in phases.values():
        assert run.start <= span.start <= span.end <= run.end
    (fault,) = phases["phase during"].children
    assert fault.name == "fault freeze"
    assert fault.attributes["chaos.fault.type"] == "process.suspend"
    assert fault.attributes["chaos.revert.outcome"] == "reverted"
    assert 1.5e9 <= fault.end - fault.start <= 3e9  # inject -> revert, about 2 s
    checks = [e for e in phases["phase before"].events if e[0] == "check.evaluated"]
    assert checks and checks[0][1]["chaos.status"] == "PASS"
    assert len({s.trace_id for s in receiver.spans}) == 1


def test_a_collector_that_never_answers_delays_no_revert(tmp_path: Path,
                                                         state_dir: Path) -> None:
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    victim = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)"])
    try:
        host = f"127.0.0.1:{hung.getsockname()[1]}"
        result = run_chaos("run", "--traces", str(experiment(tmp_path, victim.pid, host)),
                           env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{host}",
                                "OTEL_EXPORTER_OTLP_TIMEOUT": "30"}, timeout=120)
    finally:
        hung.close()
        release(victim)
    assert result.returncode == 0, result.stdout + result.stderr
    journal = json.loads(next((tmp_path / "runs").glob("*/journal.json")).read_text())
    (injection,) = journal["injections"]
    assert injection["outcome"] == "reverted"
    assert 1.5 <= injection["reverted_at"] - injection["injected_at"] <= 2.5
