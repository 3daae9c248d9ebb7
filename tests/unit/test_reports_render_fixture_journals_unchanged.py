"""Every report format rendered from stored journals, compared byte for byte with what the
renderers produced before the journal became a typed record (tests/fixtures/reports): reading
attributes instead of string keys must not move a character of any report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chaos.reports import bundle, collection, html, junit, markdown, terminal

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
JOURNALS = [FIXTURES / "journals" / f"{name}.json"
            for name in ("checkout", "crash", "error", "ctk", "synthetic")]


def rendered() -> dict[str, str]:
    """{fixture file name: text} of every format, for the three journals as one collection."""
    loaded = collection.load(JOURNALS)
    texts = {
        "all.junit.xml": junit.render_collection(loaded),
        "all.run.junit.xml": junit.render(loaded.journals, "chaos"),
        "all.md": markdown.render(loaded),
        # the one moving part: when the page was generated
        "all.html": re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "GENERATED",
                           html.render(loaded, {})),
    }
    for entry in loaded.entries:
        name = Path(entry.label).stem
        assert entry.journal is not None
        texts[f"{name}.summary.txt"] = terminal.summary(entry.journal, f"journals/{name}.json")
    for name, text in bundle.drafts(loaded).items():
        texts[name] = text
    return texts


@pytest.mark.parametrize("name", sorted(p.name for p in (FIXTURES / "reports").iterdir()))
def test_each_stored_report_renders_again_byte_for_byte(name: str) -> None:
    texts = rendered()
    assert name in texts, f"{name} is no longer rendered"
    assert texts[name] == (FIXTURES / "reports" / name).read_text(encoding="utf-8")


def test_every_rendered_report_has_a_stored_copy() -> None:
    assert sorted(rendered()) == sorted(p.name for p in (FIXTURES / "reports").iterdir())
