"""`chaos validate`'s last line fits what went wrong: "fix the fields named above" only when a
problem names a field; a file that is missing, empty or not YAML gets a footer that says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from chaos.cli import cli


def footer(*paths: Path) -> str:
    result = CliRunner().invoke(cli, ["validate", *map(str, paths)])
    assert result.exit_code == 2, result.output
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("text", [None, "", "# only a comment\n", "title: [\n"])
def test_a_file_that_cannot_be_read_names_no_fields(tmp_path: Path, text: str | None) -> None:
    path = tmp_path / "checkout.yaml"
    if text is not None:
        path.write_text(text)
    last = footer(path)
    assert "fields named above" not in last
    # a .yaml file is told it is not valid YAML (a .json one: JSON)
    assert "could not be read as experiments (missing, empty, or not valid YAML)" in last


def test_an_empty_file_is_located(tmp_path: Path) -> None:
    path = tmp_path / "checkout.yaml"
    path.write_text("")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert f"  {path}:1:1: file is empty" in result.stderr


def test_a_wrong_field_keeps_the_field_footer(tmp_path: Path) -> None:
    path = tmp_path / "checkout.yaml"
    path.write_text("title: t\nfaults: 3\n")
    assert "fix the fields named above" in footer(tmp_path / "missing.yaml", path)
