"""Units used in experiment files and on the command line, parsed in one place.

Durations (`250ms`, `1.5s`, `2m`, `1h30m`), percents (`99.5%`), sizes (`512MiB`, `1G`), rates
(`200/s`, `30/m`). Parsers raise `ValueError` with a message that says what was expected and,
where the mistake is a common one (a bare number, a fraction for a percentage), how to write it;
the model loader turns that into a located Problem. Units are never guessed: `duration: 30` is
refused rather than read as seconds (or milliseconds, as some tools do).

The `*_PATTERN` constants describe the same syntax for JSON Schema (editors); they are looser
(no unit order) because the loader has the last word.
"""

from __future__ import annotations

import math
import re

_DURATION_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
_DURATION_ORDER = tuple(_DURATION_UNITS)  # largest first: `1h30m` yes, `30s1m` no
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h|d)")
_SIZE_UNITS = {
    "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)")
_RATE_UNITS = {"s": 1.0, "sec": 1.0, "m": 1 / 60, "min": 1 / 60, "h": 1 / 3600}
_RATE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*/\s*([a-z]+)")
_PERCENT = re.compile(r"\+?([0-9]+(?:\.[0-9]+)?)\s*%")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")

DURATION_PATTERN = r"(?:[0-9]+(?:\.[0-9]+)?(?:[uUmM]?[sS]|[mMhHdD]))+"
PERCENT_PATTERN = r"\+?[0-9]+(?:\.[0-9]+)?\s*%"
SIZE_PATTERN = r"[0-9]+(?:\.[0-9]+)?\s*(?:[kKmMgGtT]?[bB]?|[kKmMgGtT][iI][bB])"
RATE_PATTERN = r"[0-9]+(?:\.[0-9]+)?\s*/\s*(?:[sS](?:[eE][cC])?|[mM](?:[iI][nN])?|[hH])"


def shown(value: object, limit: int = 60) -> str:
    """A value quoted for an error message, cut short: a 2 MB string must not fill the terminal."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def clip(text: str, limit: int = 60) -> str:
    """A label cut to `limit` characters at a word boundary, with an ellipsis: a cut inside a
    word misleads (`http.server 1820` for port 18202); a missing word is visibly missing."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    in_a_word = not cut.endswith(" ") and not text[limit - 1].isspace()
    if in_a_word and " " in cut.strip():
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip() + "…"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_duration(value: object) -> float:
    """Seconds from `250ms`, `1.5s`, `1m30s`. Bare numbers are refused: units are not guessed."""
    expected = f"expected a duration like 200ms, 5s or 2m, got {shown(value)}"
    if _is_number(value):
        raise ValueError(f"{expected}: add a unit, e.g. {value}s or {value}ms")
    if not isinstance(value, str):
        raise ValueError(expected)
    text = value.strip().lower()
    pos, total, last_unit = 0, 0.0, -1
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        order = _DURATION_ORDER.index(match.group(2))
        if order <= last_unit:
            raise ValueError(f"{expected}: write each unit once, largest first, like 1h30m")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos, last_unit = match.end(), order
    if pos == 0 or pos != len(text):
        if _NUMBER.fullmatch(text):
            raise ValueError(f"{expected}: add a unit, e.g. {text}s or {text}ms")
        if text.startswith("-"):
            raise ValueError(f"{expected}: durations cannot be negative")
        raise ValueError(expected)
    if not math.isfinite(total):
        raise ValueError(f"duration {shown(value)} is too large")
    return total


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:g}s" if seconds == int(seconds) else f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs}s" if secs else f"{minutes}m"


def parse_percent(value: object) -> float:
    """A fraction in [0, 1] from `99.5%`. The % sign is required: is 0.5 half, or half a percent?"""
    expected = f"expected a percentage like 99.5%, got {shown(value)}"
    if _is_number(value):
        raise ValueError(f"{expected}: write it with a % sign, e.g. {value}%")
    match = _PERCENT.fullmatch(value.strip()) if isinstance(value, str) else None
    if not match:
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            raise ValueError(f"{expected}: write it with a % sign, e.g. {value.strip()}%")
        raise ValueError(expected)
    number = float(match.group(1))
    if not 0.0 <= number <= 100.0:
        raise ValueError(f"expected a percentage between 0% and 100%, got {shown(value)}")
    return number / 100.0


def format_percent(fraction: float) -> str:
    """`99.5%`; never exponent notation (`3e-13%`), which parse_percent rightly refuses."""
    text = f"{fraction * 100:.4g}"
    if "e" in text:
        text = f"{fraction * 100:.4f}".rstrip("0").rstrip(".")
    return f"{text}%"


def parse_size(value: object) -> int:
    """Bytes from `512MiB`, `1G`, `4096` (a bare integer is bytes)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _SIZE_UNITS and unit != "":
        raise ValueError(f"expected a size like 512MiB, 2GB or 4096, got {shown(value)}")
    number = float(match.group(1)) * _SIZE_UNITS.get(unit, 1)
    if not math.isfinite(number):
        raise ValueError(f"size {shown(value)} is too large")
    return int(number)


def parse_rate(value: object) -> float:
    """Events per second from `200/s`, `30/m`, `1/h`."""
    match = _RATE.fullmatch(value.strip().lower()) if isinstance(value, str) else None
    if not match or match.group(2) not in _RATE_UNITS:
        hint = f": add a unit, e.g. {value}/s" if _is_number(value) else ""
        raise ValueError(f"expected a rate like 200/s or 30/m, got {shown(value)}{hint}")
    rate = float(match.group(1)) * _RATE_UNITS[match.group(2)]
    if not math.isfinite(rate):
        raise ValueError(f"rate {shown(value)} is too large")
    return rate
