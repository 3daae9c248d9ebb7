"""The loader reports every problem of a file at once, and only real ones.

One mistake must neither hide the next (a bad `start` in one fault used to hide an unknown fault
type in the next) nor cause noise elsewhere (a check naming a probe that has a typo of its own is
not "undeclared"). A valid file becomes a frozen model with units converted.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest

from chaos.errors import ExperimentInvalid
from chaos.model.experiment import Experiment
from chaos.model.loader import load_file, load_text
from chaos.model.source import SourceText
from chaos.runner.load import vocabulary
from tests.conftest import EXPERIMENTS

VOCAB = vocabulary()


def load(text: str, variables: dict[str, str] | None = None) -> Experiment:
    return load_text(SourceText("x.yaml", text), VOCAB, variables or {})


def problems(text: str, variables: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ExperimentInvalid) as caught:
        load(text, variables)
    return [str(p) for p in caught.value.problems]


def test_a_problem_in_one_fault_does_not_hide_problems_in_the_next() -> None:
    found = problems("""\
title: t
faults:
  - type: process.suspend
    target: {process: {name: a}}
    start: soon
    duration: 5s
  - type: process.kil
    target: {service: api}
  - type: process.kill
    target: {process: {name: b}}
    with: {signal: SIGKILL}
""")
    assert found[:3] == [
        "x.yaml:5:12: faults[0].start: expected a duration like 200ms, 5s or 2m, got 'soon'",
        "x.yaml:7:11: faults[1].type: unknown fault type 'process.kil'; did you mean process.kill?"
        f" (known: {', '.join(sorted(vocabulary().faults))}; `chaos faults` describes them)",
        "x.yaml:8:23: faults[1].target.service: no service named 'api' is declared under "
        "services (declared: none)",
    ]
    assert found[3].startswith("x.yaml:11:20: faults[2].with.signal: expected one of ")
    assert found[3].endswith(", got 'SIGKILL'; did you mean KILL?")
    assert len(found) == 4


def test_a_broken_probe_still_counts_as_declared_for_checks() -> None:
    found = problems("""\
title: t
hypothesis:
  probes:
    - name: home
      http: {url: "http://x/", timout: 1s}
  checks: [home >= 99%, homepage >= 99%]
faults:
  - type: process.kill
    target: {process: {name: a}}
""")
    assert len(found) == 2
    assert "hypothesis.probes[0].http.timout: unknown field; did you mean timeout?" in found[0]
    assert "hypothesis.checks[1]" in found[1] and "'homepage'" in found[1]


def test_a_broken_service_still_counts_as_declared_for_targets() -> None:
    found = problems("""\
title: t
services:
  - name: api
    run: python api.py
faults:
  - type: process.suspend
    target: {service: api}
    duration: 5s
""")
    assert len(found) == 1 and "services[0].run" in found[0]


def test_a_broken_limit_does_not_make_every_fault_too_long() -> None:
    found = problems("""\
title: t
faults:
  - type: process.suspend
    target: {process: {name: a}}
    duration: 20m
limits: {max_duration: 1 hour}
""")
    assert len(found) == 1 and "limits.max_duration" in found[0]


def test_problems_are_listed_in_reading_order() -> None:
    found = problems("""\
title: t
faults:
  - type: process.suspend
    target: {process: {name: a}}
limits: {max_targets: none}
hypothesis:
  probes: [{tcp: {address: "h:1"}}]
  checks: [tcp >= 1]
""")
    lines = [int(p.split(":")[1]) for p in found]
    assert lines == sorted(lines) and len(lines) == 3


def test_variables_come_from_vars_then_the_command_line() -> None:
    text = """\
title: t on ${port}
vars: {port: 8080, wait: 2s}
faults:
  - type: process.suspend
    target: {process: {name: "app-${port}"}}
    duration: ${wait}
"""
    assert load(text).faults[0].target.selector["name"] == "app-8080"
    overridden = load(text, {"port": "9090", "wait": "3s"})
    assert overridden.title == "t on 9090" and overridden.faults[0].duration == 3.0
    assert overridden.variables == {"port": "9090", "wait": "3s"}


@pytest.mark.parametrize(("vars_", "message"), [
    ("{port: [1, 2]}", "vars.port: expected a string, number or boolean"),
    ('{"my port": 1}', "key must match"),
])
def test_vars_are_named_scalars(vars_: str, message: str) -> None:
    found = problems(f"title: t\nvars: {vars_}\nfaults: []\n")
    assert any(message in p for p in found), found


def test_the_quickstart_becomes_a_frozen_model_in_seconds_and_fractions() -> None:
    experiment = load_file(EXPERIMENTS / "quickstart.yaml", VOCAB)
    fault = experiment.faults[0]
    assert (fault.type, fault.start, fault.duration) == ("process.suspend", 1.0, 3.0)
    assert fault.target.kind == "service" and fault.target.selector["name"] == "demo"
    assert experiment.hypothesis is not None
    assert experiment.hypothesis.checks[0].parsed.threshold == pytest.approx(0.99)
    assert isinstance(fault.params, MappingProxyType)
    with pytest.raises(TypeError):
        fault.params["children"] = True  # type: ignore[index]


def test_an_instant_fault_takes_no_duration() -> None:
    experiment = load("title: t\nfaults:\n  - type: process.kill\n"
                      "    target: {process: {name: a}}\n    start: 2s\n")
    assert experiment.faults[0].duration == 0.0 and experiment.faults[0].end == 2.0


def test_a_chaos_toolkit_json_experiment_is_recognised() -> None:
    found = problems('{"title": "t", "steady-state-hypothesis": {}, "method": []}')
    assert found == ["x.yaml:1:1: this is a Chaos Toolkit experiment (it has method, "
                     "steady-state-hypothesis), not a chaos one; write it in the chaos format "
                     "(docs/experiment-format.md)"]


@pytest.mark.parametrize(("content", "message"), [
    (None, "file not found"),
    (b"title: caf\xe9\n", "x.yaml:1:11: byte 0xe9 is not UTF-8 text; save the file as UTF-8"),
    ("dir", "is a directory, not an experiment file"),
])
def test_unreadable_files_are_problems_too(tmp_path: Path, content: bytes | str | None,
                                           message: str) -> None:
    path = tmp_path / "x.yaml"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(ExperimentInvalid) as caught:
        load_file(path, VOCAB)
    assert message in str(caught.value).replace(str(tmp_path) + "/", "")


def test_windows_line_endings_and_a_bom_keep_line_numbers_right(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(b"\xef\xbb\xbftitle: t\r\nfaults:\r\n  - type: nope\r\n"
                     b"    target: {process: {name: a}}\r\n")
    with pytest.raises(ExperimentInvalid) as caught:
        load_file(path, VOCAB)
    (problem,) = caught.value.problems
    assert problem.location is not None
    assert (problem.location.line, problem.location.column) == (3, 11)


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as file:
        file.truncate(3 * 1024 * 1024)
    with pytest.raises(ExperimentInvalid, match="file is larger than 2048 KiB"):
        load_file(path, VOCAB)


def test_a_share_of_0_percent_is_refused_where_it_is() -> None:
    """It would select nothing, inject nothing and end DONE: a typo, never an intent."""
    found = problems("""\
title: t
faults:
  - type: process.suspend
    target: {process: {name: a}, percent: 0%}
    duration: 1s
""")
    assert found == ["x.yaml:4:43: faults[0].target.percent: 0% hits no target: give a share "
                     "above 0%, or leave the fault out"], found
