"""The built-in report formats as reporters: thin wrappers around the renderers.

The renderers (terminal, junit, html, markdown, postmortem) keep their own signatures; each
function here adapts one to `render(collection, place)` of the Reporter protocol
(chaos.reports.registry). The order of BUILTINS is the order of `chaos report --help` and of
the files in a report directory. Adding a format: its renderer module, one line in BUILTINS.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chaos.reports.collection import Collection
from chaos.reports.registry import Output, Placement, Rendered

if TYPE_CHECKING:
    from chaos.reports.registry import ReporterRegistry


@dataclass(frozen=True)
class BuiltinReporter:
    name: str
    filename: str  # "" for standard output only
    summary: str
    renders: Callable[[Collection, Placement], Rendered]

    def render(self, collection: Collection, place: Placement) -> Rendered:
        return self.renders(collection, place)


def _text(collection: Collection, place: Placement) -> Rendered:
    from chaos.reports import terminal

    return "\n\n".join(terminal.summary(e.journal, str(e.path)) for e in collection.entries
                       if e.journal is not None)


def _json(collection: Collection, place: Placement) -> Rendered:
    documents = collection.journals
    return json.dumps(documents if len(documents) != 1 else documents[0], indent=2)


def _html(collection: Collection, place: Placement) -> Rendered:
    from chaos.reports import bundle, html

    # links to the journals and the files beside it, relative to where the report goes
    return html.render(collection, bundle.links(collection, place.directory, place.beside))


def _markdown(collection: Collection, place: Placement) -> Rendered:
    from chaos.reports import markdown

    return markdown.render(collection)


def _junit(collection: Collection, place: Placement) -> Rendered:
    from chaos.reports import junit

    return junit.render_collection(collection)


def _postmortem(collection: Collection, place: Placement) -> Rendered:
    from chaos.reports import bundle

    drafts = bundle.drafts(collection)
    if place.bundle:  # listed as postmortem-NN, NN the experiment's number in the report
        return [Output(f"postmortem-{name[11:13]}", name, text) for name, text in drafts.items()]
    return "\n---\n\n".join(drafts.values()) if drafts else \
        "<!-- no failed or aborted experiment: no post-mortem draft -->\n"


MARKDOWN_FILE = "report.md"  # the HTML report links to it when both are written
BUILTINS = (
    BuiltinReporter("text", "", "the terminal summary of each run", _text),
    BuiltinReporter("json", "", "the journals as they are (one document, or a list)", _json),
    BuiltinReporter("html", "report.html", "one self-contained file with charts", _html),
    BuiltinReporter("markdown", MARKDOWN_FILE, "for PR comments and wikis", _markdown),
    BuiltinReporter("junit", "junit.xml", "JUnit XML for CI", _junit),
    BuiltinReporter("postmortem", "postmortem-NN.md", "a draft per failed or aborted experiment",
                    _postmortem),
)


def register(registry: ReporterRegistry) -> None:
    """Add the built-in formats to `registry` (each is verified as it is added)."""
    for reporter in BUILTINS:
        registry.add(reporter)
