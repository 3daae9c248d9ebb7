"""`chaos validate` and `chaos --help` must not pay for the HTTP client (httpx and what it
brings: httpcore, anyio, h11) nor for asyncio and ssl: probes, Prometheus and webhooks import
it when they first send. Validation still knows every probe kind (the registry is loaded).

A fresh interpreter runs the CLI in-process and prints sys.modules, measured from outside the
interpreter that runs the test (which has long imported all of it).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HTTP_STACK = ("httpx", "httpcore", "anyio", "h11", "ssl", "asyncio")

PROBE = """
import json, sys
sys.argv = ["chaos", *json.loads(sys.argv[1])]
from chaos.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("\\n@@modules@@", json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def modules_after(*argv: str) -> tuple[int, list[str]]:
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.rsplit("@@modules@@", 1)[1])
    return report["code"], report["modules"]


def loaded(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".", 1)[0] in HTTP_STACK]


@pytest.mark.parametrize("argv", [("--help",), ("validate", "experiments/quickstart.yaml")])
def test_the_http_stack_stays_unloaded(argv: tuple[str, ...]) -> None:
    code, modules = modules_after(*argv)
    assert code == 0
    assert loaded(modules) == []


def test_validate_reads_the_probe_kinds_from_the_registry() -> None:
    code, modules = modules_after("validate", "experiments/quickstart.yaml")
    assert code == 0
    assert "chaos.slo.probe_kinds" in modules and "chaos.slo.probe_runners" in modules
