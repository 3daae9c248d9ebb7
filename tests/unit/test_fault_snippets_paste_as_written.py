"""`chaos faults` prints defaults as they are written in YAML: a snippet pasted into an
experiment means what the catalogue says (an empty string default is `""`, not nothing)."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from chaos.adapters.registry import default_registry
from chaos.cli import cli


def test_every_snippet_parses_back_to_the_declared_defaults() -> None:
    empty = 0
    for fault in default_registry().faults:
        result = CliRunner().invoke(cli, ["faults", fault.name])
        assert result.exit_code == 0, result.output
        snippet = result.output.split("  in an experiment:\n")[1].split("\n\n")[0]
        (entry,) = yaml.safe_load(snippet)["faults"]
        for name, field in fault.params.fields.items():
            if field.schema.default is not None:
                pasted = entry["with"][name]  # a unit's "0" reads back as 0: the same thing
                assert pasted == field.schema.default or (
                    not isinstance(pasted, bool) and str(pasted) == field.schema.default), (
                    fault.name, name)
            if field.schema.default == "":
                empty += 1
                assert '[default ""]' in result.output
    assert empty, "no fault has an empty-string default any more: this test checks nothing"


def test_the_listing_quotes_an_empty_default() -> None:
    output = CliRunner().invoke(cli, ["faults"]).output
    assert "(default )" not in output and '(default "")' in output
