"""Experiment files the subprocess tests write and run: the sections several test modules share,
so a change to the format is made once. Each returns YAML text or the path it wrote."""

from __future__ import annotations


def freeze(pid: int, duration: str) -> str:
    """The faults section every test here uses: freeze one process."""
    return (f"faults:\n  - type: process.suspend\n    target: {{process: {{pid: {pid}}}}}\n"
            f"    duration: {duration}\nlimits: {{max_duration: 1h}}\n")
