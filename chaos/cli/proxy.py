"""`chaos proxy`: run the fault proxy in the foreground, for ad hoc use and as a run's service.

It listens, relays to the upstream, shows connections and bytes live, and registers itself (a
locator in the state dir) so `chaos run` and `chaos inject` add their faults to it instead of
starting their own. Faults given here (`--fault TYPE --with key=value`, parameters as in the
catalogue) are held for the proxy's lifetime or `--for`; Ctrl-C ends the proxy, and with it
every fault it carries.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import click

from chaos.adapters.local.proxy_toxics import FAULT_KINDS, TLS_KINDS
from chaos.errors import ExitCode

# the proxy's toxic table, derived; its TLS faults are not offered by `--fault` (experiment
# files and `chaos inject` give them)
PROXY_FAULTS = tuple(f for f, kind in FAULT_KINDS.items() if kind not in TLS_KINDS)


def _params(fault_type: str, pairs: tuple[str, ...]) -> dict[str, Any]:
    """`--with key=value` pairs checked against the fault type's parameter schema."""
    from chaos.faults import default_registry
    from chaos.model.schema import Int, Scalar

    fault = default_registry().get(fault_type)
    assert fault is not None
    fields = fault.params.fields
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in fields:
            from chaos.model.walk import suggest

            raise click.UsageError(f"--with {pair}: expected KEY=VALUE with KEY one of "
                                   f"{', '.join(fields) or '(none)'} for {fault_type}"
                                   f"{suggest(key, list(fields)) if sep else ''}")
        schema = fields[key].schema
        if not isinstance(schema, Scalar):
            raise click.UsageError(f"--with {key}: a mapping cannot be given here; use an "
                                   "experiment file or `chaos inject` for it")
        try:
            values[key] = schema.convert(int(text) if isinstance(schema, Int)
                                         and text.strip().isdigit() else text)
        except ValueError as exc:
            raise click.UsageError(f"--with {key}: {exc}") from None
    for key, field in fields.items():
        if key not in values:
            if field.required:
                raise click.UsageError(f"{fault_type} needs --with {key}=... "
                                       f"({field.schema.doc})")
            values[key] = field.schema.default_value()
    return values


@click.command()
@click.option("--listen", required=True, metavar="HOST:PORT", help="address to listen on")
@click.option("--upstream", required=True, metavar="HOST:PORT", help="address to relay to")
@click.option("--fault", "fault_type", type=click.Choice(PROXY_FAULTS), metavar="TYPE",
              help="a network fault to hold: " + ", ".join(PROXY_FAULTS))
@click.option("--with", "pairs", multiple=True, metavar="KEY=VALUE",
              help="a parameter of --fault, e.g. --with delay=200ms (see `chaos faults`)")
@click.option("--direction", type=click.Choice(["downstream", "upstream", "both"]),
              default="downstream", show_default=True, help="which byte stream --fault hits")
@click.option("--toxicity", default="100%", show_default=True,
              help="share of connections --fault hits")
@click.option("--protocol", type=click.Choice(["tcp", "http"]),
              help="http reads HTTP/1.x requests, for the http.* faults [default: http for an "
                   "http.* --fault, else tcp]")
@click.option("--upstream-tls", is_flag=True,
              help="with --protocol http: the upstream is HTTPS (certificate not verified)")
@click.option("--for", "duration", metavar="DURATION", help="exit after this long, e.g. 10m")
@click.option("-q", "--quiet", is_flag=True, help="no live view")
def proxy(listen: str, upstream: str, fault_type: str | None, pairs: tuple[str, ...],
          direction: str, toxicity: str, protocol: str | None, upstream_tls: bool,
          duration: str | None,
          quiet: bool) -> None:
    """Run a TCP fault proxy between LISTEN and UPSTREAM in the foreground.

    \b
    Example:  chaos proxy --listen 127.0.0.1:16379 --upstream 127.0.0.1:6379 \\
                --fault network.latency --with delay=200ms --with jitter=20ms
    Faults from `chaos run` / `chaos inject` on target {proxy: {listen: ...}} go to it too.
    """
    from chaos.adapters.local.proxy import Proxy, split_address
    from chaos.adapters.local.proxy_toxics import from_fault
    from chaos.units import parse_duration, parse_percent

    try:
        split_address(listen), split_address(upstream)
        until = time.time() + parse_duration(duration) if duration else None
        share = parse_percent(toxicity)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    protocol = protocol or ("http" if (fault_type or "").startswith("http.") else "tcp")
    try:
        server = Proxy(listen, upstream, protocol=protocol, upstream_tls=upstream_tls)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if fault_type:
        params = _params(fault_type, pairs)
        toxic = from_fault("cli", fault_type, params, direction, share, None)
        try:
            asyncio.run(server.add(toxic))
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    elif pairs:
        raise click.UsageError("--with needs --fault TYPE")
    try:
        caught = asyncio.run(_serve(server, until, quiet))
    except OSError as exc:
        click.echo(f"chaos proxy: error: cannot listen on {listen}: {exc.strerror or exc}",
                   err=True)
        click.echo("  what to do: pick a free port, or stop the program using it", err=True)
        sys.exit(ExitCode.INVALID)
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
    # like `chaos inject`: ended by Ctrl-C is 130, by SIGTERM 143 (its faults end with it)
    sys.exit({"SIGINT": ExitCode.INTERRUPTED, "SIGTERM": ExitCode.TERMINATED}.get(
        caught or "", ExitCode.OK))


async def _serve(server: Any, until: float | None, quiet: bool) -> str | None:
    """Serve until `until`, or a signal: the signal's name, or None."""
    import signal

    from chaos.adapters.local.proxy_control import control_path, locator_path, serve

    stop = asyncio.Event()
    caught: list[str] = []
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        caught.append(sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    address = server.address
    view = None if quiet else asyncio.create_task(_live_view(server, stop, until))
    try:
        await serve(server, control_path(address), locator_path(address), until, stop)
    finally:
        if view is not None:
            view.cancel()
            await asyncio.gather(view, return_exceptions=True)
        if not quiet and sys.stderr.isatty():
            sys.stderr.write("\r\033[K")  # leave no half-drawn status line behind
            sys.stderr.flush()
    return caught[0] if caught else None


async def _live_view(server: Any, stop: asyncio.Event, until: float | None) -> None:
    from chaos.cli.live import fit, proxy_line
    from chaos.cli.view import _width

    await asyncio.sleep(0.2)
    click.echo(f"chaos proxy: {server.address} -> {server.upstream[0]}:{server.upstream[1]} "
               "(Ctrl-C stops)", err=True)
    tty = sys.stderr.isatty()
    while not stop.is_set():
        line = proxy_line(server.snapshot(), until, time.time())
        if tty:  # redrawn in place: erase first, never wider than the terminal
            sys.stderr.write("\r\033[K" + fit(line, _width(sys.stderr)))
            sys.stderr.flush()
        else:
            click.echo(line, err=True)
        await asyncio.sleep(0.5 if tty else 10.0)
