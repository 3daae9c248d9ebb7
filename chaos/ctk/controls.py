"""A Chaos Toolkit experiment's configuration, secrets and controls, as chaoslib handles them.

chaoslib loads configuration and secrets (environment, files, dynamic values) and calls the
controls' `begin`/`end` hooks around the experiment, the method and the rollbacks. The engine
(chaos.ctk.engine) decides when; this module does each step the way chaoslib does, and says
where a missing environment variable is named in the file (chaoslib names the variable only).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from chaos.ctk.document import CtkExperiment
from chaos.errors import ChaosError

log = logging.getLogger(__name__)


def configure(experiment: CtkExperiment, doc: Mapping[str, Any],
              config_vars: Mapping[str, Any],
              secret_vars: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(configuration, secrets) as chaoslib loads them, or a ChaosError saying where."""
    from chaoslib.configuration import load_configuration, load_dynamic_configuration
    from chaoslib.exceptions import ChaosException
    from chaoslib.secret import load_secrets

    try:
        config = load_configuration(doc.get("configuration", {}), dict(config_vars))
        secrets = load_secrets(doc.get("secrets", {}), config, dict(secret_vars))
        return load_dynamic_configuration(config, secrets), secrets
    except ChaosException as exc:
        raise ChaosError(missing_env(experiment, doc, config_vars, secret_vars) or
                         f"{experiment.source}: configuration or secrets: {exc}",
                         hint="set the environment variables the file names, or pass "
                              "--var NAME=VALUE / --var-file FILE") from None


def missing_env(experiment: CtkExperiment, doc: Mapping[str, Any],
                given_config: Mapping[str, Any], given_secrets: Mapping[str, Any]) -> str:
    """file:line: path of the first configuration or secret naming an unset environment
    variable (chaoslib's message names the variable only)."""
    entries = [(f"configuration.{k}", v) for k, v in
               (doc.get("configuration") or {}).items() if k not in given_config]
    entries += [(f"secrets.{scope}.{k}", v)
                for scope, values in (doc.get("secrets") or {}).items()
                if isinstance(values, dict) for k, v in values.items()
                if k not in (given_secrets.get(scope) or {})]
    for path, value in entries:
        # chaoslib reads a configuration's `default`, not a secret's
        defaulted = path.startswith("configuration.") and "default" in value \
            if isinstance(value, dict) else False
        if isinstance(value, dict) and value.get("type") == "env" and not defaulted and \
                value.get("key") not in os.environ:
            return (f"{experiment.where(path)}: {path}: environment variable "
                    f"{value.get('key')} is not set" + (
                        " (chaoslib does not read a secret's `default`)"
                        if "default" in value else ""))
    return ""


class Controls:
    """The controls begun and not yet ended, per level (experiment, method, rollback)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.config: dict[str, Any] = {}
        self.secrets: dict[str, Any] = {}
        self._begun: list[tuple[str, Any]] = []

    def begin_experiment(self) -> None:
        from chaoslib.control import Control, initialize_controls, initialize_global_controls

        initialize_global_controls(self.doc, self.config, self.secrets, {})
        initialize_controls(self.doc, self.config, self.secrets)
        self.begin("experiment", Control())

    def begin(self, level: str, control: Any) -> None:
        control.begin(level, self.doc, self.doc, self.config, self.secrets)
        self._begun.append((level, control))

    def end(self, level: str, state: Any) -> None:
        from chaoslib.exceptions import ChaosException

        for i, (name, control) in enumerate(self._begun):
            if name == level:
                del self._begun[i]
                control.with_state(state)
                try:
                    control.end(level, self.doc, self.doc, self.config, self.secrets)
                except ChaosException:
                    log.debug("control end failed", exc_info=True)
                return

    def end_experiment(self, journal: dict[str, Any]) -> None:
        """The experiment control's `after` sees the finished journal, as in chaoslib."""
        from chaoslib.control import cleanup_controls, cleanup_global_controls

        try:
            self.end("experiment", journal)
        finally:
            cleanup_controls(self.doc)
            cleanup_global_controls()
