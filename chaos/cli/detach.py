"""`chaos inject --detach`: hand the fault to a background holder and return its id at once.

The holder is the same `chaos inject` command, without `--detach`, in its own session (a closed
terminal or a Ctrl-C here does not reach it), so it keeps every promise a foreground inject
keeps: the ledger intent before the fault, the watchdog reverting when the holder dies, workers
ending at their deadline, the fault reverted at `--for`. `chaos stop ID` ends it early
(chaosblade's `create -> id -> destroy` habit). Its output goes to a log in the state dir,
named after the run: the run id is chosen here and handed to the holder (`--run-id`, hidden).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import click

from chaos.errors import ExitCode

INJECTION_LINE = re.compile(r"^injection (\S+)", re.MULTILINE)


def holder_argv(argv: list[str], run_id: str) -> list[str]:
    """This command line without --detach, as run `run_id`: what the holder runs."""
    return [sys.executable, "-m", "chaos", *(a for a in argv if a != "--detach"),
            "--run-id", run_id]


def detach(state_dir: Path | None, argv: list[str]) -> int:
    """Start the holder; print the injection id once it is applied (exit 0), or the holder's
    own report and exit code when it ends first (a guard refused, nothing matched...)."""
    from chaos.paths import default_state_dir
    from chaos.records import new_run_id

    logs = Path(state_dir or default_state_dir()) / "detached"
    logs.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id()
    log = logs / f"inject-{run_id}.log"
    with open(log, "wb") as out:
        holder = subprocess.Popen(holder_argv(argv, run_id), stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    while True:  # the engine bounds how long an injection may take; so does the holder's exit
        code = holder.poll()  # before reading: a holder that ended has written everything
        text = log.read_text(errors="replace")
        found = INJECTION_LINE.search(text)
        if found:
            click.echo(f"injection {found.group(1)}")
            click.echo(f"  held in the background by pid {holder.pid} until --for ends; "
                       f"`chaos stop {found.group(1)}` ends it now; log: {log}", err=True)
            return int(ExitCode.OK)
        if code is not None:
            click.echo(text.rstrip(), err=True)
            return code
        time.sleep(0.05)
