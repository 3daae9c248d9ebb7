"""A real cluster for the e2e tests (marked e2e, skipped unless asked for): the client from the
current kubeconfig (`api`), a namespace made and deleted per test (`namespace`), and polling
for ready pods."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def api() -> Any:
    from kubernetes import client, config

    config.load_kube_config()
    return client


@pytest.fixture
def namespace(api: Any) -> Iterator[str]:
    name = f"chaos-e2e-{uuid.uuid4().hex[:6]}"
    core = api.CoreV1Api()
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        core.delete_namespace(name)


def ready(api: Any, namespace: str, app: str) -> int:
    pods = api.CoreV1Api().list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return sum(1 for p in pods if any(c.type == "Ready" and c.status == "True"
                                      for c in (p.status.conditions or ())))


def wait(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(1)
