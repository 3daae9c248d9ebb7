"""Units used in experiment files and on the command line, parsed in one place.

Durations (`250ms`, `1.5s`, `2m`, `1h30m`), percents (`99.5%`), sizes (`512MiB`, `1G`), rates
(`200/s`, `30/m`). Parsers raise `ValueError` with a message that says what was expected, which
the model loader turns into a located Problem.
"""

from __future__ import annotations

import re

_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h|d)")
_SIZE_UNITS = {
    "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)")
_RATE_UNITS = {"s": 1.0, "sec": 1.0, "m": 1 / 60, "min": 1 / 60, "h": 1 / 3600}
_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*([a-z]+)")


def parse_duration(value: object) -> float:
    """Seconds from `250ms`, `1.5s`, `1m30s`. Bare numbers are refused: units are not guessed."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a duration like 200ms, 5s or 2m, got {value!r}")
    text = value.strip().lower()
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        raise ValueError(f"expected a duration like 200ms, 5s or 2m, got {value!r}")
    return total


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:g}s" if seconds == int(seconds) else f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs}s" if secs else f"{minutes}m"


def parse_percent(value: object) -> float:
    """A fraction in [0, 1] from `99.5%`."""
    text = value.strip() if isinstance(value, str) else None
    if not text or not text.endswith("%"):
        raise ValueError(f"expected a percentage like 99.5%, got {value!r}")
    try:
        number = float(text[:-1])
    except ValueError:
        raise ValueError(f"expected a percentage like 99.5%, got {value!r}") from None
    if not 0.0 <= number <= 100.0:
        raise ValueError(f"expected a percentage between 0% and 100%, got {value!r}")
    return number / 100.0


def format_percent(fraction: float) -> str:
    return f"{fraction * 100:.4g}%"


def parse_size(value: object) -> int:
    """Bytes from `512MiB`, `1G`, `4096` (a bare integer is bytes)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _SIZE_UNITS and unit != "":
        raise ValueError(f"expected a size like 512MiB, 2GB or 4096, got {value!r}")
    return int(float(match.group(1)) * _SIZE_UNITS.get(unit, 1))


def parse_rate(value: object) -> float:
    """Events per second from `200/s`, `30/m`, `1/h`."""
    match = _RATE.fullmatch(value.strip().lower()) if isinstance(value, str) else None
    if not match or match.group(2) not in _RATE_UNITS:
        raise ValueError(f"expected a rate like 200/s or 30/m, got {value!r}")
    return float(match.group(1)) * _RATE_UNITS[match.group(2)]
