"""A file written from another tool's habits (`latency:` from Toxiproxy, `command:` from Docker
Compose) is refused at file:line:col with our name for it, through the real CLI, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from chaos.model.borrowed import BORROWED
from tests.conftest import run_chaos


def test_validate_names_our_field_for_a_borrowed_one(tmp_path: Path) -> None:
    path = tmp_path / "borrowed.yaml"
    path.write_text("""title: written from habit
services:
  - name: api
    command: [python, -m, http.server]
faults:
  - type: network.latency
    target: {proxy: {listen: "127.0.0.1:1", upstream: "127.0.0.1:2"}}
    with: {latency: 200ms}
    duration: 10s
  - type: resource.cpu
    target: {host: local}
    with: {cpu_percent: 50%}
    duration: 10s
""")
    result = run_chaos("validate", str(path), timeout=30)
    assert result.returncode == 2
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    assert (f"{path}:4:5: services[0].command: unknown field; did you mean run? "
            "(Docker Compose calls it command)") in out, out
    assert (f"{path}:8:12: faults[0].with.latency: unknown field; did you mean delay? "
            "(Toxiproxy and Chaos Mesh call it latency)") in out, out
    assert "faults[1].with.cpu_percent: unknown field; did you mean load?" in out, out


def test_proxy_with_a_borrowed_parameter_name_says_ours() -> None:
    result = run_chaos("proxy", "--listen", "127.0.0.1:1", "--upstream", "127.0.0.1:2",
                       "--fault", "network.latency", "--with", "latency=200ms", timeout=30)
    assert result.returncode == 2
    assert "did you mean delay? (Toxiproxy and Chaos Mesh call it latency)" in result.stderr


def test_every_borrowed_name_points_at_a_field_of_ours() -> None:
    schema = json.loads(run_chaos("schema", timeout=30).stdout)
    mappings: list[set[str]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            mappings.append(set(node.get("properties", {})))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert {ours for ours, _ in BORROWED.values()} <= set().union(*mappings)
    # where both are fields of one mapping, the borrowed name is ours too: no suggestion there
    assert not [(word, ours) for word, (ours, _) in BORROWED.items()
                for names in mappings if {word, ours} <= names]


def test_inject_with_a_borrowed_flag_name_says_ours(state_dir: Path) -> None:
    latency = run_chaos("inject", "network.latency", "--listen", "127.0.0.1:1", "--upstream",
                        "127.0.0.1:2", "--latency", "200ms", "--for", "1s", timeout=30)
    assert latency.returncode == 2
    assert ("no such option --latency; did you mean --delay? (Toxiproxy and Chaos Mesh call "
            "it latency)") in latency.stderr
    cpu = run_chaos("inject", "resource.cpu", "--cpu-percent", "50%", "--for", "1s", timeout=30)
    assert cpu.returncode == 2
    assert "no such option --cpu-percent; did you mean --load? (chaosblade calls it " \
           "cpu-percent)" in cpu.stderr
    assert "Traceback" not in latency.stderr + cpu.stderr
