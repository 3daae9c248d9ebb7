"""`chaos validate` and `chaos --help` must not pay for the HTTP client (httpx and what it
brings: httpcore, anyio, h11) nor for asyncio and ssl: probes, Prometheus and webhooks import
it when they first send. Validation still knows every probe kind (the registry is loaded).

A fresh interpreter runs the CLI in-process and prints sys.modules, measured from outside the
interpreter that runs the test (which has long imported all of it).
"""

from __future__ import annotations

import pytest

from tests.support.fresh_cli import modules_after

HTTP_STACK = ("httpx", "httpcore", "anyio", "h11", "ssl", "asyncio")


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
