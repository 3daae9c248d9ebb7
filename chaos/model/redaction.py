"""Secrets never leave the process: one masking rule for every record and every output.

A variable whose name says it holds a secret (`API_TOKEN`, `db_password`, ...) is a secret
whatever its source - the file's `vars:`, `--var`, or the environment a `${NAME}` was filled
from. Its value is replaced by `***` wherever it appears: the journal, the event stream (and so
the live view and the console), the ledger's target labels and errors (and so the watchdog's
log, `chaos status` and `chaos recover`). Revert specs are the one exception: they must undo
exactly what was done, and they hold identities (pids, UIDs), not command lines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# variables whose names say they hold a secret
SECRET_NAME = re.compile(r"token|secret|passw|auth|credential|api_?key|private", re.IGNORECASE)
MASK = "***"
MIN_SECRET = 4  # shorter values would mask ordinary text; their variable is still masked
PREFIX = 6  # a secret cut after this many characters (a bounded label) is still masked


@dataclass(frozen=True)
class Redactor:
    """Masks the values of secret variables in text and in JSON-like data."""

    secrets: tuple[str, ...] = ()  # longest first, so a secret containing another goes whole

    @classmethod
    def of(cls, variables: Mapping[str, Any]) -> Redactor:
        values = {str(v) for k, v in variables.items()
                  if SECRET_NAME.search(k) and len(str(v)) >= MIN_SECRET}
        return cls(tuple(sorted(values, key=len, reverse=True)))

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, value: str) -> str:
        """Every occurrence masked - also a cut one: labels bound a command line's length, and
        "--token=s3cr3t-va" would otherwise leak most of it. So from its first PREFIX
        characters on, as much of the secret as follows is masked."""
        for secret in self.secrets:
            head = secret[:PREFIX]
            if head not in value:
                continue
            out, i = [], 0
            while (j := value.find(head, i)) >= 0:
                k = j + len(head)
                while k < len(value) and k - j < len(secret) and value[k] == secret[k - j]:
                    k += 1
                out += [value[i:j], MASK]
                i = k
            value = "".join(out) + value[i:]
        return value

    def data(self, value: Any) -> Any:
        """Strings masked anywhere inside dicts, lists and tuples (as lists); keys included."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value

    def variables(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        """A variables table for records: secret-named ones shown as `***`."""
        return {k: MASK if SECRET_NAME.search(k) else v for k, v in variables.items()}


NOTHING = Redactor()
