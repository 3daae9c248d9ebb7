"""A Chaos Toolkit control that appends a plain string to the method's and the rollbacks' run
lists (its `state`), which chaoslib keeps in the journal as it is."""

from __future__ import annotations

from typing import Any


def after_method_control(context: Any, state: Any, **kwargs: Any) -> None:
    state.append("note from the method control")


def after_rollback_control(context: Any, state: Any, **kwargs: Any) -> None:
    state.append("note from the rollback control")
