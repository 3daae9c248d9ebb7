"""`chaos convert FILE`: a Chaos Toolkit experiment written as a native one, and what could not
be converted (file:line of each activity left out, and why)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from chaos.errors import ChaosError, ExitCode, ExperimentInvalid


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
    import yaml

    from chaos.ctk.convert import convert as translate
    from chaos.ctk.document import load

    result = translate(load(path, providers=False))
    doc = result.document
    for skipped in result.skipped:
        click.echo(str(skipped), err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if "faults" not in doc and "hypothesis" not in doc:
        raise ChaosError(f"{path}: nothing in it has a native equivalent",
                         hint="run it as it is: `chaos run` runs Chaos Toolkit experiments")
    text = f"# converted by `chaos convert` from {path}\n" + yaml.safe_dump(
        doc, sort_keys=False, allow_unicode=True, width=100)
    _check(text, str(output or "<converted>"))
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
    click.echo(f"converted {len(doc.get('hypothesis', {}).get('probes', []))} probe(s) and "
               f"{len(doc.get('faults', []))} fault(s); {len(result.skipped)} activit"
               f"{'y' if len(result.skipped) == 1 else 'ies'} not converted"
               + (f"; written to {output}" if output else ""), err=True)
    sys.exit(ExitCode.OK)


def _check(text: str, name: str) -> None:
    """The native loader must accept what we write; `${name}`s the file needs but does not
    define (environment configuration) get a stand-in here, not in the output."""
    from chaos.model.loader import load_text
    from chaos.model.source import SourceText
    from chaos.runner.load import vocabulary

    stand_ins = {m: "0" for m in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}", text)}
    declared = yaml_vars(text)
    try:
        load_text(SourceText(name, text), vocabulary(),
                  {k: v for k, v in stand_ins.items() if k not in declared})
    except ExperimentInvalid as exc:
        raise ChaosError(f"the converted experiment is not valid:\n{exc}",
                         hint="edit the Chaos Toolkit file, or convert by hand from the output "
                              "above") from None


def yaml_vars(text: str) -> set[str]:
    import yaml

    loaded = yaml.safe_load(text)
    return set((loaded or {}).get("vars") or {})
