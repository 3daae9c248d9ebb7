"""What people actually feed `chaos run` and `chaos validate`: JSON written by Python's
json.dump, var files with a typo, a runtime section of the wrong shape, seconds as text. Each is
either run as Chaos Toolkit would, or refused with exit 2 at its file:line - never an internal
error, and never silently run with the experiment's defaults."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_chaos
from tests.ctk.conftest import outcome, run_ours, run_theirs


def _experiment(tmp_path: Path, **extra: Any) -> Path:
    doc = {"title": "Checkout 🚀 survives ${who}", "description": "d",
           "configuration": {"who": "nobody"},
           "method": [{"type": "action", "name": "write", "provider": {
               "type": "python", "module": "tests.ctk.activities", "func": "value",
               "arguments": {"value": "ünï ${who} 🚀"}}}], **extra}
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(doc))  # ensure_ascii: 🚀 is written "\ud83d\ude80"
    return path


def test_json_with_escaped_astral_characters_runs_and_writes_its_journals(
        tmp_path: Path, state_dir: Path) -> None:
    path = _experiment(tmp_path)
    assert "\\ud83d\\ude80" in path.read_text()
    ctk = tmp_path / "ctk.json"
    result = run_chaos("run", "-q", str(path), "--runs-dir", str(tmp_path / "runs"),
                       "--var", "who=cart", "--journal-format", "ctk", "--journal", str(ctk))
    assert result.returncode == 0, result.stdout + result.stderr
    journal = json.loads(ctk.read_text(encoding="utf-8"))
    assert journal["run"][0]["output"] == "ünï cart 🚀"
    # the summary says the title chaoslib substituted, as the Chaos Toolkit journal has it
    assert journal["experiment"]["title"] == "Checkout 🚀 survives cart"
    assert "── Checkout 🚀 survives cart" in result.stdout


def test_a_half_written_astral_character_is_located(tmp_path: Path, state_dir: Path) -> None:
    path = tmp_path / "half.json"
    path.write_text('{"title": "a \\ud83d b", "description": "d", "method": []}')
    result = run_chaos("validate", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{path}:1:11: title: " in result.stderr and "other half" in result.stderr


def test_a_var_file_chaostoolkit_would_ignore_stops_the_run(tmp_path: Path,
                                                           state_dir: Path) -> None:
    """chaoslib logs a var file it cannot parse (or whose keys it does not read) and runs on
    with the experiment's defaults; we refuse it, located, before anything runs."""
    path = _experiment(tmp_path)
    cases = {"typo.yaml": ("configuration:\n  who: [cart\n", ":3:1: not valid YAML"),
             "typo.json": ('{"configuration": {"who": "cart",}}', ":1:34: not valid JSON"),
             "flat.yaml": ("who: cart\n", ": who: not read"),
             "list.json": ("[1]", ": expected a mapping"),
             "vars.env": ("who\n", ":1: expected NAME=VALUE"),
             "huge.env": ("who=cart\n" * 300_000, ": file is larger than 2048 KiB")}
    for name, (text, expected) in cases.items():
        var_file = tmp_path / name
        var_file.write_text(text)
        result = run_chaos("run", str(path), "--runs-dir", str(tmp_path / "runs"),
                           "--var-file", str(var_file))
        assert result.returncode == 2, (name, result.stdout + result.stderr)
        assert f"--var-file {var_file}{expected}" in result.stderr, (name, result.stderr)
        assert "internal error" not in result.stderr
        assert not (tmp_path / "runs").exists(), name
    good = tmp_path / "good.yaml"
    good.write_text("configuration:\n  who: cart\n")
    ran = run_chaos("run", "-q", str(path), "--runs-dir", str(tmp_path / "runs"),
                    "--var-file", str(good))
    assert ran.returncode == 0 and "survives cart" in ran.stdout, ran.stdout + ran.stderr


def test_wrongly_shaped_sections_are_located_not_internal_errors(tmp_path: Path,
                                                                state_dir: Path) -> None:
    path = tmp_path / "shapes.json"
    probe = {"type": "probe", "name": ["not", "a", "name"], "tolerance": True,
             "provider": {"type": "python", "module": "tests.ctk.activities",
                          "func": "value", "arguments": {"value": True}}}
    # a tolerance function that has a default for `value`: chaoslib validates it, then fails
    # with KeyError: 'arguments' in the middle of the run
    python_tolerance = {"type": "probe", "name": "even", "tolerance": {
        "type": "probe", "name": "version", "provider": {
            "type": "python", "module": "platform", "func": "python_version"}},
        "provider": {"type": "python", "module": "tests.ctk.activities", "func": "value",
                     "arguments": {"value": 2}}}
    path.write_text(json.dumps({
        "title": "t", "description": "d",
        "runtime": {"rollbacks": "always", "hypothesis": {"frequency": "fast",
                                                           "fail_fast": "yes"}},
        "steady-state-hypothesis": {"title": "h", "probes": [probe, python_tolerance]},
        "method": [{"ref": ["a", "list"]}]}, indent=1))
    result = run_chaos("validate", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "internal error" not in result.stderr
    fields = re.findall(rf"^  {re.escape(str(path))}:\d+:\d+: (\S+): ", result.stderr,
                        re.MULTILINE)
    assert set(fields) >= {"runtime.rollbacks", "runtime.hypothesis.frequency",
                           "runtime.hypothesis.fail_fast", "method[0]",
                           "steady-state-hypothesis.probes[1].tolerance.provider"}, \
        result.stderr


def test_fault_seconds_given_as_text_are_seconds(tmp_path: Path, state_dir: Path) -> None:
    """`--var dur=30` (or `${dur}` from the environment) hands chaos.ctk.actions "30"."""
    path = tmp_path / "freeze.json"
    path.write_text(json.dumps({
        "title": "t", "description": "d",
        "method": [{"type": "action", "name": "freeze", "provider": {
            "type": "python", "module": "chaos.ctk.actions", "func": "suspend_process",
            "arguments": {"name": "no-such-process-here", "duration": "30"}}}]}))
    result = run_chaos("validate", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_secret_from_an_unset_variable_is_located_even_with_a_default(
        tmp_path: Path, state_dir: Path) -> None:
    """chaoslib reads a configuration's `default` but not a secret's."""
    path = _experiment(tmp_path, secrets={"app": {"token": {
        "type": "env", "key": "CHAOS_TEST_UNSET_TOKEN", "default": "ignored"}}})
    result = run_chaos("run", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert re.search(rf"{re.escape(str(path))}:1:\d+: secrets\.app\.token: environment "
                     r"variable CHAOS_TEST_UNSET_TOKEN is not set", result.stdout + result.stderr)


# JSON that YAML reads but JSON does not: refused where it is, as Chaos Toolkit's json.load
# refuses it; and what Python's json accepts beyond JSON (NaN, a key twice) refused too, as
# documented in docs/chaostoolkit.md
NOT_JSON = [
    ("trailing-comma", '  "method": [],\n}', 3, 15, "a trailing comma before `}`"),
    ("comment", '  "method": [] // none yet\n}', 3, 16, "a comment: JSON has none"),
    ("single-quotes", "  'method': []\n}", 3, 3, "a key in single quotes"),
    ("nan", '  "method": [],\n  "tags": [NaN]\n}', 4, 12, "NaN is not a JSON number"),
    ("duplicate-key", '  "method": [],\n  "title": "again"\n}', 4, 3,
     "title: duplicate key; keep one"),
]


@pytest.mark.parametrize(("rest", "line", "column", "message"),
                         [case[1:] for case in NOT_JSON], ids=[case[0] for case in NOT_JSON])
def test_json_that_is_not_json_is_refused_where_it_is(
        tmp_path: Path, state_dir: Path, rest: str, line: int, column: int,
        message: str) -> None:
    path = tmp_path / "experiment.json"
    path.write_text('{"title": "t",\n  "description": "d",\n' + rest)
    chaostoolkit_refuses = rest.count("NaN") + rest.count('"title"') == 0
    if chaostoolkit_refuses:  # chaoslib.loader reads .json with json.load
        with pytest.raises(ValueError):
            json.loads(path.read_text())
    result = run_chaos("validate", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"{path}:{line}:{column}: " in result.stderr and message in result.stderr, \
        result.stderr


def test_json_numbers_are_numbers_as_in_chaostoolkit(dirs: dict[str, Path]) -> None:
    """`1e2`, `2e-1`, `1e0` are JSON numbers; read as YAML they were text: the pause was
    refused, the timeout made the run abort and the argument arrived as a string."""
    path = dirs["ours"].parent / "numbers.json"
    path.write_text(json.dumps({
        "title": "numbers", "description": "d",
        "method": [{"type": "action", "name": "hundred", "timeout": 1.0, "pauses": {
            "after": 0.2}, "provider": {"type": "python", "module": "tests.ctk.activities",
                                        "func": "value", "arguments": {"value": 100.0}}}],
    }).replace("1.0", "1e0").replace("0.2", "2e-1").replace("100.0", "1e2"))
    assert "1e2" in path.read_text() and "2e-1" in path.read_text()
    result = run_chaos("validate", str(path))
    assert result.returncode == 0, result.stderr
    ours = run_ours(str(path), dirs["ours"])
    theirs = run_theirs(str(path), dirs["theirs"])
    assert ours.code == 0, ours.stdout + ours.stderr
    assert outcome(ours.ctk) == outcome(theirs)
    assert ours.ctk["run"][0]["output"] == theirs["run"][0]["output"] == 100.0
