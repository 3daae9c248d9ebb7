"""A Chaos Toolkit control that appends every hook it sees to the file in $CTK_CONTROL_LOG."""

from __future__ import annotations

import os
from typing import Any


def _log(line: str) -> None:
    with open(os.environ["CTK_CONTROL_LOG"], "a") as handle:
        handle.write(line + "\n")


def configure_control(**kwargs: Any) -> None:
    _log("configure")


def before_experiment_control(context: Any, **kwargs: Any) -> None:
    _log("before experiment")


def after_experiment_control(context: Any, state: Any, **kwargs: Any) -> None:
    _log(f"after experiment status={state.get('status') if isinstance(state, dict) else '?'}")


def before_hypothesis_control(context: Any, **kwargs: Any) -> None:
    _log("before hypothesis")


def after_hypothesis_control(context: Any, state: Any, **kwargs: Any) -> None:
    _log(f"after hypothesis met={state.get('steady_state_met')}")


def before_method_control(context: Any, **kwargs: Any) -> None:
    _log("before method")


def after_method_control(context: Any, state: Any, **kwargs: Any) -> None:
    _log(f"after method runs={len(state or [])}")


def before_rollback_control(context: Any, **kwargs: Any) -> None:
    _log("before rollback")


def after_rollback_control(context: Any, state: Any, **kwargs: Any) -> None:
    _log(f"after rollback runs={len(state or [])}")


def before_activity_control(context: Any, **kwargs: Any) -> None:
    _log(f"before activity {context.get('name')}")


def after_activity_control(context: Any, state: Any, **kwargs: Any) -> None:
    _log(f"after activity {context.get('name')} {state.get('status')}")


def cleanup_control() -> None:
    _log("cleanup")
