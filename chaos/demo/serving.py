"""What the demo services share: serving until SIGTERM/SIGINT, and tidying the temp
directories of launchers that exec into the real program (nginx, Sentinel) and so cannot clean
up after themselves."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time


async def serve_until_signalled(server: asyncio.AbstractServer) -> None:
    """Serve until SIGTERM or SIGINT, then close the server."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def sweep_stale_dirs(prefix: str, pidfile: str) -> None:
    """Remove the temp directories (named PREFIX...) of earlier launches whose process is gone:
    after exec nobody is left to clean up, so each start cleans up after the ones before it."""
    base = tempfile.gettempdir()
    for entry in os.listdir(base):
        path = os.path.join(base, entry)
        if not entry.startswith(prefix) or not os.path.isdir(path):
            continue
        try:
            with open(os.path.join(path, pidfile), encoding="ascii") as file:
                os.kill(int(file.read().split()[0]), 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # running as someone else
        except (OSError, ValueError, IndexError):
            try:
                if time.time() - os.path.getmtime(path) < 60:
                    continue  # no pid yet: maybe starting right now
            except OSError:
                continue
        shutil.rmtree(path, ignore_errors=True)
