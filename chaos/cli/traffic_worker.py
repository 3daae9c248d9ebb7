"""`chaos traffic-worker --connect RUNNER:PORT`: a share of a run's traffic, from another host.

A run whose `traffic.workers` has `remote: N` listens where `listen:` says and waits for N of
these; each proves it knows the shared token (read from the environment, never from argv,
which `ps` shows to every user), has its clock offset measured, and sends its share of the
schedule until the run ends, the connection closes, or `--max-duration` passes. The protocol
and its security are in chaos.slo.traffic_remote and docs/experiment-format.md.
"""

from __future__ import annotations

import os
import re

import click

from chaos.errors import UsageError

ADDRESS = re.compile(r"(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):([0-9]{1,5})")


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    from chaos.units import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("traffic-worker")
@click.option("--connect", "address", required=True, metavar="HOST:PORT",
              help="The runner's traffic.workers.listen address (or an SSH tunnel to it).")
@click.option("--token-env", default="CHAOS_WORKER_TOKEN", show_default=True, metavar="NAME",
              help="Environment variable holding the shared token.")
@click.option("--connect-within", default="60s", show_default=True, callback=_duration,
              metavar="DURATION",
              help="Keep retrying the connection this long (start workers before the run).")
@click.option("--max-duration", default="24h", show_default=True, callback=_duration,
              metavar="DURATION",
              help="Stop sending after this long, whatever the runner says.")
def traffic_worker(address: str, token_env: str, connect_within: float,
                   max_duration: float) -> None:
    """Send a share of a run's traffic for a runner on another host.

    \b
    Example:  CHAOS_WORKER_TOKEN=... chaos traffic-worker --connect 10.0.0.5:7070
    """
    import asyncio

    if not ADDRESS.fullmatch(address) or not 0 < int(address.rpartition(":")[2]) < 65536:
        raise click.BadParameter(f"expected HOST:PORT like 10.0.0.5:7070, got {address!r}",
                                 param_hint="--connect")
    token = os.environ.get(token_env, "")
    if not token:
        raise UsageError(f"${token_env} is not set: the worker proves the run's token",
                         hint=f"export {token_env} with the value the experiment's "
                              "traffic.workers.token has")
    from chaos.slo.traffic import loop_factory
    from chaos.slo.traffic_remote import work_for

    def said(text: str) -> None:
        click.echo(f"chaos traffic-worker: {text}", err=True)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        said(runner.run(work_for(address, token, connect_within, max_duration, said)))
