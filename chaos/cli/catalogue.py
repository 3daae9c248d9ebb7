"""`chaos faults` and `chaos schema`: the catalogue and the format, read from the registries."""

from __future__ import annotations

import json
from typing import Any

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def faults(as_json: bool) -> None:
    """List fault types: target kinds, parameters with units and defaults."""
    from chaos.adapters.registry import default_registry

    adapters = default_registry()
    catalogue: list[dict[str, Any]] = []
    for fault in adapters.faults:
        params = [{"name": name, "type": f.schema.describe(), "default": f.schema.default,
                   "doc": f.schema.doc} for name, f in fault.params.fields.items()]
        catalogue.append({"type": fault.name, "summary": fault.summary,
                          "targets": list(fault.target_kinds),
                          "adapters": sorted(a.name for a in adapters.adapters_for(fault.name)),
                          "instant": fault.instant, "params": params})
    if as_json:
        click.echo(json.dumps(catalogue, indent=2))
        return
    for entry in catalogue:
        click.echo(f"{entry['type']}  -  {entry['summary']}")
        timing = "instant" if entry["instant"] else "held for `duration`, then reverted"
        click.echo(f"    targets: {', '.join(entry['targets'])}   ({timing})")
        for p in entry["params"]:
            default = f" (default {p['default']})" if p["default"] is not None else ""
            click.echo(f"    with.{p['name']}: {p['type']}{default} - {p['doc']}")
        click.echo("")


def experiment_json_schema() -> dict[str, object]:
    from chaos.faults import default_registry as default_faults
    from chaos.model.sections import experiment_schema
    from chaos.runner.load import vocabulary

    vocab = vocabulary()
    schema = experiment_schema(vocab).json_schema()
    fault_item = schema["properties"]["faults"]["items"]
    fault_item["properties"]["type"]["enum"] = sorted(vocab.faults)
    fault_item["allOf"] = [
        {"if": {"properties": {"type": {"const": f.name}}},
         "then": {"properties": {"with": f.params.json_schema()}}}
        for f in default_faults()
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
    click.echo(json.dumps(experiment_json_schema(), indent=2))
