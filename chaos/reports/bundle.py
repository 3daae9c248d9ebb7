"""Every report of one collection, written into one directory (what a game day leaves behind).

`chaos gameday run` writes these next to its aggregate journal; `chaos report --format all
--output DIR` writes the same set from journals later. Which formats exist is the reporter
registry's business (chaos.reports.registry); this module places their files and the links
between them.
"""

from __future__ import annotations

import os
from pathlib import Path

from chaos.reports import analysis, postmortem
from chaos.reports.builtin import MARKDOWN_FILE
from chaos.reports.collection import Collection
from chaos.reports.registry import Output, Placement, ReporterRegistry, default_registry


def write(collection: Collection, directory: Path, formats: tuple[str, ...], *,
          reporters: ReporterRegistry | None = None) -> dict[str, str]:
    """Write the reports of these formats (those with a file; in the registry's order);
    return {format: file name} (several files: one key each, e.g. `postmortem-NN`)."""
    registry = reporters or default_registry()
    directory.mkdir(parents=True, exist_ok=True)
    place = Placement(directory, formats, bundle=True)
    written: dict[str, str] = {}
    for reporter in registry:
        if reporter.name not in formats or not reporter.filename:
            continue
        rendered = reporter.render(collection, place)
        outputs = ([Output(reporter.name, reporter.filename, rendered)]
                   if isinstance(rendered, str | bytes) else rendered)
        for output in outputs:
            _put(directory / output.filename, output.content)
            written[output.key] = output.filename
    return written


def links(collection: Collection, directory: Path,
          formats: tuple[str, ...] = ()) -> dict[int, list[tuple[str, str]]]:
    """Per experiment, the files beside the HTML report that go with it, as relative URLs:
    its journal, the Markdown summary and its post-mortem draft (when those are written)."""
    names = {i: postmortem.filename(i, analysis.facts(e))
             for i, e in enumerate(collection.entries, 1)
             if e.journal is not None and analysis.facts(e).needs_postmortem}
    result: dict[int, list[tuple[str, str]]] = {}
    for i, entry in enumerate(collection.entries, 1):
        here: list[tuple[str, str]] = []
        if entry.path is not None and entry.journal is not None:
            here.append(("journal", os.path.relpath(entry.path.resolve(), directory.resolve())))
        if "markdown" in formats:
            here.append(("Markdown summary", MARKDOWN_FILE))
        if "postmortem" in formats and i in names:
            here.append(("post-mortem draft", names[i]))
        if here:
            result[i] = here
    return result


def drafts(collection: Collection) -> dict[str, str]:
    """{file name: Markdown} of a post-mortem draft per failed or aborted experiment."""
    result = {}
    for i, entry in enumerate(collection.entries, 1):
        f = analysis.facts(entry)
        if entry.journal is not None and f.needs_postmortem:
            result[postmortem.filename(i, f)] = postmortem.draft(
                f, entry.journal, owners=collection.owners, gameday=collection.gameday)
    return result


def _put(path: Path, content: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content.encode() if isinstance(content, str) else content)
    tmp.replace(path)
