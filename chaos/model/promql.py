"""A PromQL series selector, `name{label="value", ...}`: the one piece of PromQL the loader checks.

`hypothesis.prometheus.latency` names a histogram around which chaos builds its own queries
(`name_bucket{..., le="0.35"}`, `name_count{...}`), so the selector must be one chaos can take
apart: a metric name, then label matchers. `chaos validate` refuses anything else at its line,
instead of Prometheus refusing the generated query in the middle of a run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME = re.compile(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*")
MATCHER = re.compile(
    r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"
    r"(\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)\s*")
EXAMPLE = 'http_request_duration_seconds{job="api"}'
SUFFIXES = ("_bucket", "_count", "_sum")


@dataclass(frozen=True)
class Selector:
    """A histogram's name and its label matchers, each as written (`job="api"`)."""

    name: str
    matchers: tuple[str, ...] = ()

    def series(self, suffix: str, *extra: str) -> str:
        """The selector of one of the histogram's series, e.g. series("_bucket", 'le="1"')."""
        inner = ", ".join((*self.matchers, *extra))
        return f"{self.name}{suffix}{{{inner}}}" if inner else f"{self.name}{suffix}"


def parse_selector(text: str) -> Selector:
    """The selector in `text`, or ValueError saying what to write instead."""
    name = NAME.match(text)
    if not name:
        raise ValueError(_not_a_query(text))
    metric, pos = name[1], name.end()
    for suffix in SUFFIXES:
        if metric.endswith(suffix):
            raise ValueError(f"name the histogram without {suffix}: "
                             f"{metric.removesuffix(suffix)!r} (chaos reads its _bucket and "
                             "_count series itself)")
    matchers: list[str] = []
    if pos < len(text):
        if text[pos] != "{":
            raise ValueError(_not_a_query(text))
        pos += 1
        while not text.startswith("}", pos):
            matcher = MATCHER.match(text, pos)
            if not matcher:
                raise ValueError(f"expected a label matcher like job=\"api\" (with =, !=, =~ "
                                 f"or !~ and a quoted value) at {text[pos:]!r} in {text!r}")
            if matcher[1] in ("le", "__name__"):
                raise ValueError(f"{matcher[1]!r} cannot be selected here: "
                                 + ("each latency check chooses its bucket"
                                    if matcher[1] == "le" else "write the metric name first")
                                 + f", e.g. {EXAMPLE}")
            matchers.append(f"{matcher[1]}{matcher[2]}{matcher[3]}")
            pos = matcher.end()
            if text.startswith(",", pos):
                pos = len(text) - len(text[pos + 1:].lstrip())
            elif not text.startswith("}", pos):
                raise ValueError(f"expected `,` or `}}` at {text[pos:]!r} in {text!r}")
        if text[pos + 1:].strip():
            raise ValueError(_not_a_query(text))
    return Selector(metric, tuple(matchers))


def _not_a_query(text: str) -> str:
    inner = re.search(r"([a-zA-Z_:][a-zA-Z0-9_:]*?)(?:_bucket|_count|_sum)?(\{[^{}]*\})", text)
    instead = f"{inner[1]}{inner[2]}" if inner else EXAMPLE
    return (f"expected a histogram's metric name, optionally with label matchers, like "
            f"{instead}, got {text!r}: chaos builds the rate(..._bucket[$window]) queries "
            "itself")
