"""The built-in report formats as reporters: thin wrappers around the renderers.

The renderers (terminal, junit, html, markdown, postmortem) keep their own signatures; each
wrapper here adapts one to the Reporter protocol of chaos.reports.registry. The order of
`BUILTINS` is the order of `chaos report --help` and of the files in a report directory.
Adding a format: its renderer module, a reporter class, one line in BUILTINS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chaos.reports.collection import Collection
from chaos.reports.registry import Output, Placement, Rendered

if TYPE_CHECKING:
    from chaos.reports.registry import Reporter, ReporterRegistry


@dataclass(frozen=True)
class TextReporter:
    name: str = "text"
    filename: str = ""  # the terminal summary: standard output only
    summary: str = "the terminal summary of each run"

    def render(self, collection: Collection, place: Placement) -> Rendered:
        from chaos.reports import terminal

        return "\n\n".join(terminal.summary(e.journal, str(e.path)) for e in collection.entries
                           if e.journal is not None)


@dataclass(frozen=True)
class JsonReporter:
    name: str = "json"
    filename: str = ""  # the journals themselves: nothing new to keep in a directory
    summary: str = "the journals as they are (one document, or a list)"

    def render(self, collection: Collection, place: Placement) -> Rendered:
        documents = collection.journals
        return json.dumps(documents if len(documents) != 1 else documents[0], indent=2)


@dataclass(frozen=True)
class HtmlReporter:
    name: str = "html"
    filename: str = "report.html"
    summary: str = "one self-contained file with charts"

    def render(self, collection: Collection, place: Placement) -> Rendered:
        from chaos.reports import bundle, html

        # links to the journals and the files beside it, relative to where the report goes
        return html.render(collection, bundle.links(collection, place.directory, place.beside))


@dataclass(frozen=True)
class MarkdownReporter:
    name: str = "markdown"
    filename: str = "report.md"
    summary: str = "for PR comments and wikis"

    def render(self, collection: Collection, place: Placement) -> Rendered:
        from chaos.reports import markdown

        return markdown.render(collection)


@dataclass(frozen=True)
class JunitReporter:
    name: str = "junit"
    filename: str = "junit.xml"
    summary: str = "JUnit XML for CI"

    def render(self, collection: Collection, place: Placement) -> Rendered:
        from chaos.reports import junit

        return junit.render_collection(collection)


@dataclass(frozen=True)
class PostmortemReporter:
    name: str = "postmortem"
    filename: str = "postmortem-NN.md"  # in a directory: one draft per experiment that needs one
    summary: str = "a draft per failed or aborted experiment"

    def render(self, collection: Collection, place: Placement) -> Rendered:
        from chaos.reports import bundle

        drafts = bundle.drafts(collection)
        if place.bundle:  # listed as postmortem-NN, NN the experiment's number in the report
            return [Output(f"{self.name}-{name[11:13]}", name, text)
                    for name, text in drafts.items()]
        return "\n---\n\n".join(drafts.values()) if drafts else \
            "<!-- no failed or aborted experiment: no post-mortem draft -->\n"


BUILTINS: tuple[Reporter, ...] = (
    TextReporter(), JsonReporter(),
    HtmlReporter(), MarkdownReporter(), JunitReporter(), PostmortemReporter(),
)


def register(registry: ReporterRegistry) -> None:
    """Add the built-in formats to `registry` (each is verified as it is added)."""
    for reporter in BUILTINS:
        registry.add(reporter)
