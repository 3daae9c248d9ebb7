"""`chaos convert FILE`: a Chaos Toolkit experiment written as a native one, and what could not
be converted (file:line of each activity left out, and why)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
import yaml

from chaos.errors import ChaosError, ExitCode, ExperimentInvalid

if TYPE_CHECKING:
    from chaos.ctk.convert import Conversion


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the native experiment here (default: standard output).")
def convert(path: str, output: Path | None) -> None:
    """Write the native equivalent of the Chaos Toolkit experiment FILE.

    http/process probes become probes with checks; chaos.ctk.actions calls, pkill/killall/kill
    and chaostoolkit-kubernetes pod, deployment and node actions become faults. Every activity
    that has no equivalent is listed on standard error with its file:line. Exit 0 when a native
    experiment was written (even with activities left out), 2 when nothing converts.
    """
    from chaos.ctk.convert import convert as translate
    from chaos.ctk.document import load

    result = translate(load(path, providers=False))
    try:
        text = _checked(result, path, str(output or "<converted>"))
    finally:  # what was left out, and why, also when nothing converts
        for skipped in result.skipped:
            click.echo(str(skipped), err=True)
        for note in result.notes:
            click.echo(f"note: {note}", err=True)
    doc = result.document
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
    click.echo(f"converted {len(doc.get('hypothesis', {}).get('probes', []))} probe(s) and "
               f"{len(doc.get('faults', []))} fault(s); {len(result.skipped)} activit"
               f"{'y' if len(result.skipped) == 1 else 'ies'} not converted"
               + (f"; written to {output}" if output else ""), err=True)
    sys.exit(ExitCode.OK)


ENTRY = re.compile(r"^(hypothesis\.probes|faults)\[(\d+)\]")


def _checked(result: Conversion, path: str, name: str) -> str:
    """The native text, accepted by the native loader: an entry it refuses (a signal or a
    fault parameter ours do not have) is left out and listed with the loader's reason."""
    for _ in range(2):
        if "faults" not in result.document and "hypothesis" not in result.document:
            raise ChaosError(f"{path}: nothing in it has a native equivalent",
                             hint="run it as it is: `chaos run` runs Chaos Toolkit experiments")
        text = f"# converted by `chaos convert` from {path}\n" + yaml.safe_dump(
            result.document, sort_keys=False, allow_unicode=True, width=100)
        try:
            _check(text, name)
        except ExperimentInvalid as exc:
            refused: dict[str, dict[int, str]] = {}
            for problem in exc.problems:
                found = ENTRY.match(problem.path)
                if found is None:
                    break
                refused.setdefault(found[1], {}).setdefault(
                    int(found[2]), f"{problem.path[found.end():].lstrip('.') or 'it'}: "
                                   f"{problem.message}")
            else:
                result.drop(refused)
                continue
            raise ChaosError(f"the converted experiment is not valid:\n{exc}",
                             hint="edit the Chaos Toolkit file, or convert by hand from the "
                                  "output above") from None
        return text
    raise AssertionError("unreachable: the second check has nothing left to refuse")


def _check(text: str, name: str) -> None:
    """The native loader must accept what we write; `${name}`s the file needs but does not
    define (environment configuration) get a stand-in here, not in the output: a URL where
    one starts a URL, else 0."""
    from chaos.model.loader import load_text
    from chaos.model.source import SourceText
    from chaos.runner.load import vocabulary

    declared = yaml_vars(text)
    urls = set(re.findall(r"url: \$\{([A-Za-z_][A-Za-z0-9_.-]*)\}", text))
    stand_ins = {m: "http://127.0.0.1" if m in urls else "0"
                 for m in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}", text)}
    load_text(SourceText(name, text), vocabulary(),
              {k: v for k, v in stand_ins.items() if k not in declared})


def yaml_vars(text: str) -> set[str]:
    loaded = yaml.safe_load(text)
    return set((loaded or {}).get("vars") or {})
