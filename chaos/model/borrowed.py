"""Names other tools give our fields, so a file written from habit gets a useful message.

`latency: 200ms` is Toxiproxy's and Chaos Mesh's name for `delay`; `command:` is Docker
Compose's for a service's `run`. A typo finder cannot know these (the words are not alike), so
they are listed: borrowed name -> (our field, who uses it). Only offered where that field exists,
and only for names that mean one thing (not `timeout`, `percent`, `bytes`: fields of ours too).
"""

from __future__ import annotations

BORROWED: dict[str, tuple[str, str]] = {
    # Toxiproxy toxics and Chaos Mesh NetworkChaos
    "latency": ("delay", "Toxiproxy and Chaos Mesh"),
    "average_size": ("size", "Toxiproxy's slicer"),
    "size_variation": ("variation", "Toxiproxy's slicer"),
    "loss": ("percent", "Chaos Mesh"),
    "corrupt": ("percent", "Chaos Mesh"),
    "duplicate": ("percent", "Chaos Mesh"),
    "probability": ("percent", "tc netem and Pumba"),
    "percentage": ("percent", "Pumba and Gremlin"),
    # stress-ng, chaosblade, Gremlin resource attacks
    "cpu_percent": ("load", "chaosblade and Gremlin"),
    "cpu-percent": ("load", "chaosblade"),
    "cpu_count": ("cores", "chaosblade"),
    "cpu-count": ("cores", "chaosblade"),
    "mem_percent": ("amount", "chaosblade"),
    "mem-percent": ("amount", "chaosblade"),
    "sig": ("signal", "kill"),
    "grace_period_seconds": ("grace_period", "Kubernetes"),
    "gracePeriodSeconds": ("grace_period", "Kubernetes"),
    # Docker Compose, Kubernetes and CI files, for services
    "command": ("run", "Docker Compose"),
    "cmd": ("run", "Dockerfile"),
    "entrypoint": ("run", "Docker Compose"),
    "healthcheck": ("ready", "Docker Compose"),
    "readiness": ("ready", "Kubernetes"),
    "readinessProbe": ("ready", "Kubernetes"),
    "environment": ("env", "Docker Compose"),
    "working_dir": ("cwd", "Docker Compose"),
}


def borrowed(word: str, choices: list[str]) -> str:
    """`; did you mean delay? (Toxiproxy and Chaos Mesh call it latency)`, or nothing."""
    ours = BORROWED.get(word)
    if ours is None or ours[0] not in choices:
        return ""
    verb = "call" if " and " in ours[1] else "calls"
    return f"; did you mean {ours[0]}? ({ours[1]} {verb} it {word})"
