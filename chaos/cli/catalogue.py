"""`chaos faults` and `chaos schema`: the catalogue and the format, read from the registries."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from chaos.faults import FaultRegistry
    from chaos.slo.probe_kinds import ProbeKinds


@click.command()
@click.argument("fault_type", required=False, metavar="[TYPE]")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def faults(fault_type: str | None, as_json: bool) -> None:
    """List fault types: target kinds, parameters with units and defaults.

    With a TYPE (`chaos faults network.latency`), that fault in detail: its adapters, how to
    inject it from the command line, and an experiment snippet.
    """
    from chaos.adapters.registry import AdapterRegistry, default_registry
    from chaos.cli.options import registry_of

    adapters = registry_of("adapters", AdapterRegistry, default_registry)
    catalogue: list[dict[str, Any]] = []
    chosen = [f for f in adapters.faults if fault_type in (None, f.name)]
    if fault_type is not None and not chosen:
        from chaos.model.walk import suggest

        names = [f.name for f in adapters.faults]
        tails = {n.rpartition(".")[2]: n for n in names}
        hint = (f"; did you mean {tails[fault_type]}?" if fault_type in tails
                else suggest(fault_type, names))
        raise click.UsageError(f"no fault type {fault_type!r}{hint} (`chaos faults` lists them)")
    for fault in chosen:
        params = [{"name": name, "type": f.schema.describe(), "default": f.schema.default,
                   "doc": f.schema.doc} for name, f in fault.params.fields.items()]
        catalogue.append({"type": fault.name, "summary": fault.summary,
                          "targets": list(fault.target_kinds),
                          "adapters": sorted(a.name for a in adapters.adapters_for(fault.name)),
                          "instant": fault.instant, "params": params})
    if as_json:
        click.echo(json.dumps(catalogue[0] if fault_type else catalogue, indent=2))
        return
    if fault_type is not None:
        click.echo(_detail(catalogue[0]))
        return
    for entry in catalogue:
        click.echo(f"{entry['type']}  -  {entry['summary']}")
        timing = "instant" if entry["instant"] else "held for `duration`, then reverted"
        click.echo(f"    targets: {', '.join(entry['targets'])}   ({timing})")
        for p in entry["params"]:
            default = f" (default {shown(p['default'])})" if p["default"] is not None else ""
            click.echo(f"    with.{p['name']}: {p['type']}{default} - {p['doc']}")
        click.echo("")


def experiment_json_schema(faults: FaultRegistry | None = None,
                           probes: ProbeKinds | None = None) -> dict[str, object]:
    """The JSON Schema of experiment files for these registries (default: the built-ins and
    the installed plugins, whose fault types get their parameters' schemas too)."""
    from chaos.adapters.registry import default_registry
    from chaos.model.sections import experiment_schema
    from chaos.runner.load import vocabulary

    faults = faults or default_registry().faults
    vocab = vocabulary(faults, probes)
    schema = experiment_schema(vocab).json_schema()
    fault_item = schema["properties"]["faults"]["items"]
    fault_item["properties"]["type"]["enum"] = sorted(vocab.faults)
    fault_item["allOf"] = [
        {"if": {"properties": {"type": {"const": f.name}}},
         "then": {"properties": {"with": f.params.json_schema()}}}
        for f in faults
    ]
    from chaos.model.schema import Int, OneOf, Percent

    fault_item["properties"]["target"] = OneOf(vocab.targets, "what the fault hits", common={
        "count": Int("hit at most this many matches", min=1),
        "percent": Percent("hit this share of the matches")}).json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://chaos.dev/schema/experiment.json",
            "title": "chaos experiment", **schema}


@click.command()
def schema() -> None:
    """Print the JSON Schema of experiment files (for editors and linters)."""
    from chaos.cli.options import given
    from chaos.faults import FaultRegistry
    from chaos.slo.probe_kinds import ProbeKinds

    click.echo(json.dumps(experiment_json_schema(given("faults", FaultRegistry),
                                                 given("probes", ProbeKinds)), indent=2))


def shown(default: object) -> str:
    """A default as it is written in YAML: a string YAML would read as something else is quoted
    (an empty string is `""`: pasted, nothing is null - or, in `{body: , ...}`, a syntax error;
    `true` would be a boolean)."""
    if isinstance(default, str):
        import yaml

        try:
            read = yaml.safe_load(default) if default else None
        except yaml.YAMLError:
            read = None
        if read is None or isinstance(read, bool):
            return json.dumps(default)
    return str(default)


def _detail(entry: dict[str, Any]) -> str:
    """One fault: everything `chaos faults` says, the adapters, and how to use it."""
    lines = [f"{entry['type']}", f"  {entry['summary']}", ""]
    timing = ("instant (nothing to revert)" if entry["instant"]
              else "held for `duration` (`--for` on the command line), then reverted")
    lines += [f"  targets:  {', '.join(entry['targets'])}",
              f"  adapters: {', '.join(entry['adapters']) or 'none installed'}",
              f"  timing:   {timing}", "", "  parameters (`with:` in a file, flags in "
              f"`chaos inject {entry['type']}`):"]
    for p in entry["params"] or [{"name": "(none)", "type": "", "default": None, "doc": ""}]:
        default = f"  [default {shown(p['default'])}]" if p["default"] is not None else ""
        flag = "--" + p["name"].replace("_", "-") if p["type"] else ""
        lines.append(f"    {p['name']:<16} {flag:<18} {p['type']}{default}")
        if p["doc"]:
            lines.append(f"    {'':<16} {p['doc']}")
    example = {p["name"]: "..." if p["default"] is None else shown(p["default"])
               for p in entry["params"]}
    lines += ["", "  in an experiment:", "    faults:", f"      - type: {entry['type']}",
              f"        target: {{{entry['targets'][0]}: {{...}}}}" if entry["targets"] else ""]
    if example:
        lines.append("        with: {" + ", ".join(f"{k}: {v}" for k, v in example.items()) + "}")
    if not entry["instant"]:
        lines.append("        duration: 30s")
    lines += ["", f"  see also: chaos inject {entry['type']} --help"]
    return "\n".join(line for line in lines if line is not None)
