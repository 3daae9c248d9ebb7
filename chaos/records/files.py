"""Journal files: written atomically as strict JSON, read back with a message naming the file.

The runner writes journals here, game days write their aggregate and error journals, and
`chaos report` reads any of them; none of them needs the runner to do so.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaos.records.run import RunRecord


def strict(value: Any) -> Any:
    """The value with every non-finite number as null: a percentile that fell on timed-out
    requests is infinite (its `measured` text says `> 2s`), and JSON has no Infinity or NaN -
    jq, browsers and CI tools refuse a file that holds one."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def write(path: Path, document: Mapping[str, Any]) -> None:
    """Atomically: a reader sees the old file or the whole new one, never half. Strict JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(strict(document), handle, indent=2, default=str, allow_nan=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path) -> Any:
    """The JSON in a file said to be a journal (or a game day's aggregate)."""
    if path.exists() and not path.is_file() and not path.is_dir():  # a FIFO would block
        raise ValueError(f"{path}: cannot read a journal: not a regular file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read a journal: "
                         f"{exc.strerror if isinstance(exc, OSError) else exc}") from None


def read(path: Path) -> RunRecord:
    """One experiment journal, checked as reports need it; ValueError says what is wrong."""
    return RunRecord.from_json(load(path), str(path))
