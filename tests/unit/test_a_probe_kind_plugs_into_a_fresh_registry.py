"""A probe kind is one `ProbeKind` in a registry: an experiment file may use it once it is
registered, validation reads its parameters from the registry, and the sampler runs its runner
with its declared default timeout. Registration refuses a broken declaration at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from chaos.errors import ExperimentInvalid
from chaos.model.scalars import Duration
from chaos.model.schema import Int, Obj, Str
from chaos.runner.load import load_experiment
from chaos.slo.probe_kinds import ProbeKind, ProbeKinds, default_probe_kinds, new_probe_kinds
from chaos.slo.probes import Probe

EXPERIMENT = """\
title: the queue drains while a worker is frozen
hypothesis:
  probes:
    - name: backlog
      queue_depth: {queue: orders, at_most: 10}
  checks:
    - backlog >= 99%
  before: {window: 1s}
faults:
  - type: process.suspend
    target: {process: {name: worker}}
    duration: 1s
"""

asked: list[Mapping[str, Any]] = []


async def queue_depth(spec: Mapping[str, Any]) -> tuple[bool, str]:
    asked.append(spec)
    await asyncio.sleep(0)
    return spec["at_most"] >= 3, "3 waiting"


QUEUE_DEPTH = ProbeKind("queue_depth", Obj({
    "queue": Str("the queue's name"),
    "at_most": Int("ok when at most this many messages wait", 100),
    "timeout": Duration("the broker must answer within this", "3s", min=0.001),
}, "a queue is short enough"), queue_depth)


def registry_with_queue_depth() -> ProbeKinds:
    kinds = new_probe_kinds()
    kinds.add(QUEUE_DEPTH)
    return kinds


def test_an_experiment_uses_a_probe_kind_of_a_fresh_registry(tmp_path: Path) -> None:
    path = tmp_path / "queue.yaml"
    path.write_text(EXPERIMENT)
    kinds = registry_with_queue_depth()
    experiment = load_experiment(path, probes=kinds)
    [spec] = experiment.hypothesis.probes
    probe = Probe.from_spec(spec, kinds)
    assert probe.timeout == 3.0  # the schema's default, declared once
    asked.clear()
    sample = asyncio.run(probe.sample())
    assert sample.ok and sample.detail == "3 waiting"
    assert [dict(spec) for spec in asked] == [{"queue": "orders", "at_most": 10,
                                                "timeout": 3.0}]


def test_the_default_registry_does_not_know_it(tmp_path: Path) -> None:
    path = tmp_path / "queue.yaml"
    path.write_text(EXPERIMENT)
    with pytest.raises(ExperimentInvalid, match="queue_depth"):
        load_experiment(path)
    assert "queue_depth" not in default_probe_kinds()


def test_builtin_default_timeouts_are_declared_once_and_unchanged() -> None:
    timeouts = {kind.name: kind.timeout for kind in new_probe_kinds()}
    assert timeouts == {"http": 1.0, "tcp": 1.0, "exec": 5.0, "process": 2.0, "pods": 5.0,
                        "deployment": 5.0}


def _declaration(**changes: Any) -> ProbeKind:
    fields = {"name": "queue_depth", "params": QUEUE_DEPTH.params, "run": queue_depth,
              "default_timeout": None, **changes}
    return ProbeKind(**fields)


@pytest.mark.parametrize(("changes", "error"), [
    ({"default_timeout": 3.0}, "declare the default timeout once"),
    ({"params": Obj({"queue": Str("the queue")})}, "declare the default timeout once"),
    ({"params": Obj({"queue": Str()}), "default_timeout": 1.0}, "needs a doc"),
    ({"name": "Queue Depth"}, "lower case"),
    ({"name": "http"}, "already registered"),
    ({"run": lambda spec: (True, "")}, "async function"),
])
def test_registration_refuses_a_broken_declaration(changes: dict[str, Any], error: str) -> None:
    with pytest.raises((ValueError, TypeError), match=error):
        new_probe_kinds().add(_declaration(**changes))


NOT_A_KIND = object()


def test_plugins_come_from_the_entry_point_group_and_are_checked(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import importlib.metadata
    from importlib.metadata import EntryPoint

    groups: list[str] = []

    def entry_points(*, group: str) -> list[EntryPoint]:
        groups.append(group)
        return [EntryPoint("queue", f"{__name__}:QUEUE_DEPTH", group),
                EntryPoint("broken", f"{__name__}:NOT_A_KIND", group)]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    kinds = new_probe_kinds(plugins=True)
    assert "http" in kinds and groups == []  # built-ins never scan the installed packages
    assert "queue_depth" in kinds and groups == ["chaos.probes"]
    assert kinds.get("queue_depth") is QUEUE_DEPTH
    assert ("plugin broken from distribution (unknown) (entry point broken = "
            f"{__name__}:NOT_A_KIND in group chaos.probes) failed to register") in caplog.text


def test_a_kinds_preparation_runs_before_the_first_timed_sample() -> None:
    from dataclasses import replace

    from chaos.slo.sampler import Sampler

    prepared: list[str] = []
    kinds = new_probe_kinds()
    kinds.add(replace(QUEUE_DEPTH, prepare=lambda: prepared.append("imports")))
    probes = [Probe(name, "queue_depth", {"queue": name, "at_most": 10}, kinds)
              for name in ("orders", "refunds")]
    Sampler(probes, lambda sample: None, lambda error: None)
    assert prepared == ["imports"]  # once per kind, before any sample was scheduled
