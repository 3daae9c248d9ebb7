"""A Chaos Toolkit control that ends the experiment before the activity named `safeguard`, as a
safeguard control does (InterruptExecution), or with sys.exit(0) before one named `exits`."""

from __future__ import annotations

from typing import Any


def before_activity_control(context: dict[str, Any], **kwargs: Any) -> None:
    from chaoslib.exceptions import InterruptExecution

    if context.get("name") == "safeguard":
        raise InterruptExecution("the safeguard says stop")
    if context.get("name") == "exits":
        raise SystemExit(0)
