"""Colour on a terminal: PASS green, FAIL red, INVALID/ERROR yellow - and never anywhere else.

Off when the stream is not a TTY (pipes, CI logs, files), when `NO_COLOR` is set to anything
non-empty (https://no-color.org), or with `--no-color`. Plain ANSI escapes: a status word does
not need a rendering library, and the quick commands must not import one.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

STYLES = {
    "PASS": "32", "ok": "32", "held": "32",  # green
    "FAIL": "31", "failed": "31",  # red
    "INVALID": "33", "ERROR": "33", "NO_DATA": "33", "invalid": "33",  # yellow
    "bold": "1", "dim": "2",
}

_switched_off = False


def switch_off(ctx: click.Context | None = None, param: object = None, value: bool = True) -> None:
    global _switched_off
    if value:
        _switched_off = True


def no_colour(func: F) -> F:
    return click.option("--no-color", "--no-colour", is_flag=True, expose_value=False,
                        is_eager=True, callback=switch_off,
                        help="No colour, even on a terminal (also: NO_COLOR=1).")(func)


def enabled(stream: TextIO | None = None) -> bool:
    if _switched_off or os.environ.get("NO_COLOR"):
        return False
    stream = sys.stdout if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        return False


def paint(text: str, style: str, stream: TextIO | None = None) -> str:
    code = STYLES.get(style)
    if code is None or not enabled(stream):
        return text
    return f"\033[{code}m{text}\033[0m"


# the terminal summary (chaos.reports.terminal) stays plain text; colour goes on at the edge
_MARKS = re.compile(r"\[(ok  |FAIL|INV |ERR |n/a )\]")
_MARK_STYLE = {"ok  ": "PASS", "FAIL": "FAIL", "INV ": "INVALID", "ERR ": "ERROR",
               "n/a ": "NO_DATA"}
_VERDICT = re.compile(r"^(  verdict: )(.*)$", re.MULTILINE)


def _verdict_style(text: str) -> str:
    if text.startswith(("HYPOTHESIS HELD", "DONE")):
        return "PASS"
    if text.startswith(("HYPOTHESIS FAILED", "ABORTED", "REVERT FAILED",
                        "STEADY STATE NOT MET")):
        return "FAIL"
    return "ERROR"


def summary(text: str, stream: TextIO | None = None) -> str:
    """The summary with its check marks and verdict line coloured, when colour is on."""
    if not enabled(stream):
        return text
    text = _MARKS.sub(lambda m: "[" + paint(m.group(1), _MARK_STYLE[m.group(1)], stream) + "]",
                      text)
    return _VERDICT.sub(lambda m: m.group(1) + paint(m.group(2), _verdict_style(m.group(2)),
                                                     stream), text)


def total(text: str, stream: TextIO | None = None) -> str:
    """The total line: each count in its outcome's colour."""
    if not enabled(stream):
        return text
    for word, style in (("held", "PASS"), ("failed", "FAIL"), ("invalid", "INVALID"),
                        ("aborted", "FAIL"), ("REVERT FAILED", "FAIL"),
                        ("not steady before", "FAIL"), ("interrupted", "ERROR")):
        painted = paint(r"\1", style, stream)
        text = re.sub(rf"(\d+ {word})", painted, text)
    return text
