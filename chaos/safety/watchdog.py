"""The watchdog: a separate process that reverts a run's injections when the runner cannot.

Started with every run in its own session (Ctrl-C in the terminal does not reach it). It holds
the read end of a pipe whose write end only the runner has: the runner writes a heartbeat every
second, and the kernel closes the pipe the instant the runner dies, however it dies (SIGKILL
included). On end-of-file the watchdog reverts every open ledger entry of the run. It also
reverts entries whose deadline has passed, and everything when heartbeats stop while the pipe
is open (a frozen runner), so no fault outlives its experiment.

    runner ──heartbeat pipe──> watchdog ──revert(spec)──> adapters
       └──────── ledger (intent/applied/reverted) ────────┘
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaos.adapters.registry import AdapterRegistry

HEARTBEAT_EVERY = 1.0
# A runner whose event loop is frozen (or that was stopped with Ctrl-Z) for this long is
# treated as dead; CHAOS_HEARTBEAT_TIMEOUT overrides it (tests use a short one).
HEARTBEAT_TIMEOUT = float(os.environ.get("CHAOS_HEARTBEAT_TIMEOUT", "15"))
READY = b"ready\n"
DONE = b"done\n"

log = logging.getLogger("chaos.watchdog")


@dataclass
class WatchdogHandle:
    process: asyncio.subprocess.Process
    fd: int  # write end of the heartbeat pipe

    @property
    def pid(self) -> int:
        return self.process.pid

    def beat(self) -> None:
        try:
            os.write(self.fd, b"h")
        except (BrokenPipeError, OSError):
            pass  # the watchdog died; the run goes on and reverts itself

    async def finish(self, timeout: float = 10.0) -> None:
        """Tell the watchdog the run ended cleanly; it checks the ledger once more and exits."""
        try:
            os.write(self.fd, DONE)
        except OSError:
            pass
        os.close(self.fd)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            log.warning("watchdog %s did not exit; leaving it to finish", self.pid)


async def spawn(state_dir: Path, run: str, *, heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
                ready_timeout: float = 15.0) -> WatchdogHandle:
    """Start the watchdog and wait until it has loaded the adapters and watches the pipe."""
    read_fd, write_fd = os.pipe()
    log_dir = state_dir / "watchdog"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{run}.log", "ab") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chaos.safety.watchdog", "--state-dir", str(state_dir),
            "--run", run, "--fd", str(read_fd), "--runner-pid", str(os.getpid()),
            "--heartbeat-timeout", str(heartbeat_timeout),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log_file,
            pass_fds=(read_fd,), start_new_session=True,
            env={k: v for k, v in os.environ.items() if k != "CHAOS_FAILPOINTS"},
        )
    os.close(read_fd)
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), ready_timeout)
    except TimeoutError:
        line = b""
    if line != READY:
        process.kill()
        os.close(write_fd)
        from chaos.errors import ChaosError

        raise ChaosError("the watchdog process did not start; refusing to inject without it",
                         hint=f"see {log_dir / (run + '.log')}")
    return WatchdogHandle(process, write_fd)


class Watchdog:
    def __init__(self, state_dir: Path, run: str, fd: int, heartbeat_timeout: float, *,
                 adapters: AdapterRegistry | None = None) -> None:
        """`adapters` defaults to the process-wide registry (built-ins and plugins): the
        watchdog is its own process and reverts what any installed adapter injected."""
        from chaos.adapters.registry import default_registry
        from chaos.safety.ledger import Ledger

        self.ledger = Ledger(state_dir)
        # loaded up front: reverts must not wait for imports
        self.adapters = adapters or default_registry()
        self.run, self.fd, self.heartbeat_timeout = run, fd, heartbeat_timeout
        self.unrecorded: set[str] = set()  # reverted, but the ledger still says open

    def revert(self, why: str, *, expired_only: bool = False) -> bool:
        """Revert the run's open entries; never raises, whatever the ledger or an adapter does
        (a watchdog that dies on a full disk protects nothing). False if it has to be retried."""
        try:
            self._revert(why, expired_only=expired_only)
        except Exception:
            log.exception("%s: reverting failed", why)
            return False
        return True

    def _revert(self, why: str, *, expired_only: bool) -> None:
        from chaos.safety.recover import revert_all

        now = time.time()
        entries = [e for e in self.ledger.open_entries(self.run)
                   if not expired_only or (e.deadline is not None and e.deadline < now
                                           and e.id not in self.unrecorded)]
        if entries:
            log.warning("%s: reverting %d open injection(s)", why, len(entries))
            for result in asyncio.run(revert_all(entries, self.ledger, self.adapters,
                                                 by="watchdog")):
                log.warning("  %s on %s: %s %s", result.entry.fault, result.entry.target,
                            result.outcome, result.error)
        for missing in self.ledger.unrecorded:
            if missing.event == "reverted":
                self.unrecorded.add(missing.id)  # the deadline pass need not redo it
            log.error("  %s: %s, but could not record it — run `chaos recover` once the state "
                      "dir is writable", missing.id or missing.run,
                      "reverted" if missing.event == "reverted" else missing.event)
        self.ledger.unrecorded.clear()

    def watch(self) -> None:
        last_beat = time.monotonic()
        done = False
        stale = False
        while True:
            readable, _, _ = select.select([self.fd], [], [], HEARTBEAT_EVERY)
            if readable:
                data = os.read(self.fd, 4096)
                if not data:
                    break
                done = done or DONE in data
                last_beat, stale = time.monotonic(), False
            self.revert("deadline passed", expired_only=True)
            if not stale and time.monotonic() - last_beat > self.heartbeat_timeout:
                stale = True  # revert once per silence, not every second
                self.revert(f"no heartbeat for {self.heartbeat_timeout:g}s")
        for _ in range(3):  # the last pass: nobody comes after it
            if self.revert("run finished" if done else "runner died"):
                break
            time.sleep(HEARTBEAT_EVERY)


def _create_time(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).create_time())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaos-watchdog")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--run", required=True)
    parser.add_argument("--fd", required=True, type=int)
    parser.add_argument("--runner-pid", required=True, type=int)
    parser.add_argument("--heartbeat-timeout", type=float, default=HEARTBEAT_TIMEOUT)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s watchdog[{os.getpid()}] run {args.run}: %(message)s")
    watchdog = Watchdog(args.state_dir, args.run, args.fd, args.heartbeat_timeout)
    try:  # other runs' guards read this and leave us alone
        watchdog.ledger.watchdog_started(args.run, pid=os.getpid(),
                                         pid_create_time=_create_time(os.getpid()))
    except OSError as exc:
        log.warning("could not record the watchdog in the ledger: %s", exc)
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the runner stops reading; never block on a full pipe
    log.info("watching runner pid %d", args.runner_pid)
    watchdog.watch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
