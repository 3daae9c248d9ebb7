"""The Compose-style example (experiments/compose-shop-cache-paused.yaml) runs as a game day on
a real engine: its stack starts, the hypothesis over the published port holds while the cache
is frozen and the web loaded, both faults are reverted, and the stack is gone afterwards."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, free_port, run_chaos

pytestmark = pytest.mark.root


def test_the_compose_example_holds_its_slo_as_a_game_day(
    containers: Any, state_dir: Path, tmp_path: Path
) -> None:
    engine = containers.engine
    project = f"shop{os.getpid()}"
    result = run_chaos("gameday", "run", str(ROOT / "gamedays/containers-ci.yaml"),
                       "--out", str(tmp_path / "out"), "--var", f"image={engine.image}",
                       "--var", f"project={project}", "--var", f"port={free_port()}",
                       timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    journals = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*/*/journal.json")]
    assert len(journals) == 1, list((tmp_path / "out").rglob("*.json"))
    outcomes = {i["fault"]: i["outcome"] for i in journals[0]["injections"]}
    assert outcomes == {"freeze-cache": "reverted", "load-web": "reverted"}, outcomes
    left = engine.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}")
    assert left.stdout.strip() == "", "the stack outlived the run"
