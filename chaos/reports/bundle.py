"""Every report of one collection, written into one directory (what a game day leaves behind).

`chaos gameday run` writes these next to its aggregate journal; `chaos report --format all
--output DIR` writes the same set from journals later.
"""

from __future__ import annotations

import os
from pathlib import Path

from chaos.reports import analysis, html, junit, markdown, postmortem
from chaos.reports.collection import Collection

FILES = {"html": "report.html", "markdown": "report.md", "junit": "junit.xml"}


def write(collection: Collection, directory: Path, formats: tuple[str, ...]) -> dict[str, str]:
    """Write the reports; return {format: file name} (post-mortems: `postmortem-NN`)."""
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    if "html" in formats:
        _put(directory / FILES["html"], html.render(collection, links(collection, directory,
                                                                       formats)))
        written["html"] = FILES["html"]
    if "markdown" in formats:
        _put(directory / FILES["markdown"], markdown.render(collection))
        written["markdown"] = FILES["markdown"]
    if "junit" in formats:
        _put(directory / FILES["junit"], junit.render_collection(collection))
        written["junit"] = FILES["junit"]
    if "postmortem" in formats:
        for name, text in drafts(collection).items():
            _put(directory / name, text)
            written[f"postmortem-{name[11:13]}"] = name
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
            here.append(("Markdown summary", FILES["markdown"]))
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


def _put(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
