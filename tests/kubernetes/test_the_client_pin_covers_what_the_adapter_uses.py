"""pyproject.toml's minimum of the kubernetes client is a release that has what the adapter
calls: api.model() builds request bodies with the model classes' `from_dict`, which the client
has from 37.0.0 on (its models were regenerated on pydantic; 36.0.3's V1Eviction has no
from_dict — both wheels were unpacked and compared). An install below the pin gets a clear
error, not an AttributeError.
"""

from __future__ import annotations

import re
import tomllib

import pytest

from chaos.adapters.kubernetes import api
from tests.conftest import ROOT

MODELS_USED = re.compile(r"""model\("(V1\w+)\"""")


def pinned_minimum() -> tuple[int, ...]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [pin] = [d for d in deps if re.match(r"kubernetes\b", d)]
    found = re.search(r">=\s*([\d.]+)", pin)
    assert found, pin
    return tuple(int(part) for part in found.group(1).split("."))


def test_the_pin_is_the_first_release_with_from_dict() -> None:
    assert pinned_minimum()[:1] >= api.CLIENT_MINIMUM[:1], (
        "the kubernetes pin allows clients whose models lack from_dict (api.model)")


def test_every_model_the_adapter_builds_has_from_dict() -> None:
    from kubernetes import client

    used = {name for path in (ROOT / "chaos" / "adapters" / "kubernetes").glob("*.py")
            for name in MODELS_USED.findall(path.read_text())}
    assert {"V1Eviction", "V1DeleteOptions", "V1NetworkPolicy"} <= used
    for name in used:
        assert hasattr(getattr(client, name), "from_dict"), name


def test_an_older_client_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes import client

    class Old:  # a model class as 36.x generates it: to_dict, no from_dict
        def to_dict(self) -> dict[str, object]:
            return {}

    monkeypatch.setattr(client, "V1Eviction", Old)
    with pytest.raises(api.ApiFailed) as raised:
        api.model("V1Eviction", {})
    assert "older than 37.0" in str(raised.value) and "kubernetes>=37" in raised.value.hint
