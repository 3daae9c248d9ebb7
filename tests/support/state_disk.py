"""A state disk that breaks on cue: the ledger's fault-injection harness.

`StateDisk` is a tiny tmpfs mounted for one test and used as `CHAOS_STATE_DIR`; the runs dir
(journals) stays on the real disk. The test turns it full (`fill`, after `pad_ledger` has put
the end of a ledger file just before a page boundary, so the next record is cut there) or
read-only (`read_only`), at the moment it chooses: between two steps of the protocol with a
`NAME:stop` failpoint (the runner SIGSTOPs itself there; `resume` continues it), or while faults
are held. `kernel_state` and `ledger_lines` are the independent checks of what is left.

Read-only: a plain `mount -o remount,ro` of the tmpfs is refused (EBUSY) while any process holds
a file on it open for writing (the runner's target locks, the watchdog's log), so the harness
bind-mounts the directory over itself and remounts that bind read-only: every path opened from
then on is read-only (EROFS), which is what the ledger meets; descriptors opened before keep
working, like the log of a real volume that went read-only under a process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PAGE = 4096


def _mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True, timeout=10, capture_output=True)


class StateDisk:
    def __init__(self, path: Path, size: str = "2m") -> None:
        self.path = path
        self.size = size
        self._mounts = 0
        self._ro_bind = False

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _mount("-t", "tmpfs", "-o", f"size={self.size},mode=0755", "tmpfs", str(self.path))
        self._mounts += 1

    def unmount_all(self) -> None:
        while self._mounts:
            subprocess.run(["umount", "-l", str(self.path)], check=False, timeout=10,
                           capture_output=True)
            self._mounts -= 1

    # --- breaking it
    def fill(self) -> None:
        """Write a filler file until the filesystem has no free page left."""
        chunk = b"\0" * (64 * 1024)
        with open(self.path / "filler", "ab", buffering=0) as filler:
            for size in (len(chunk), PAGE, 1):
                with contextlib.suppress(OSError):
                    while True:
                        filler.write(chunk[:size])

    def free(self) -> None:
        (self.path / "filler").unlink(missing_ok=True)

    def pad_ledger(self, ledger: Path, room: int = 40) -> None:
        """Blank lines (readers skip them) so `ledger` ends `room` bytes before a page boundary:
        on a full disk the next record is cut there, as a long-running ledger's would be."""
        with open(ledger, "ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # the ledger's own append lock
            size = os.fstat(handle.fileno()).st_size
            pad = (PAGE - room - size % PAGE) % PAGE
            handle.write(b"\n" * pad)

    def remount_read_only(self) -> None:
        """The whole filesystem read-only: possible only while nothing has a file open for
        writing on it (before a run, say)."""
        _mount("-o", "remount,ro", str(self.path))

    def read_only(self) -> None:
        _mount("--bind", str(self.path), str(self.path))
        self._mounts += 1
        _mount("-o", "remount,bind,ro", str(self.path))
        self._ro_bind = True

    def writable(self) -> None:
        if self._ro_bind:
            # lazy: a reverter may still hold its revert lock open through the read-only bind
            subprocess.run(["umount", "-l", str(self.path)], check=True, timeout=10)
            self._mounts -= 1
            self._ro_bind = False

    # --- reading what it holds
    def ledger_files(self) -> list[Path]:
        return sorted((self.path / "ledger").glob("*.jsonl"))

    def ledger_lines(self) -> list[dict[str, Any]]:
        """Every non-blank line of every ledger file, parsed: a half-written record fails here."""
        records = []
        for path in self.ledger_files():
            for number, raw in enumerate(path.read_bytes().split(b"\n"), 1):
                if raw.strip():
                    try:
                        records.append(json.loads(raw))
                    except ValueError:
                        raise AssertionError(f"{path}:{number}: not a whole record: {raw[:80]!r}")
        return records


@contextlib.contextmanager
def state_disk(path: Path, size: str = "2m") -> Iterator[StateDisk]:
    disk = StateDisk(path, size)
    disk.mount()
    try:
        yield disk
    finally:
        disk.unmount_all()


def resume(pid: int) -> None:
    """Continue a runner stopped at a `NAME:stop` failpoint."""
    os.kill(pid, signal.SIGCONT)


def kernel_state(namespaces: list[str]) -> str:
    """qdiscs and nftables of the namespaces, without packet counters (they are not state)."""
    out = []
    for ns in namespaces:
        for argv in (["tc", "qdisc", "show"], ["nft", "list", "ruleset"]):
            out.append(subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True,
                                      text=True, timeout=10, check=True).stdout)
    state = re.sub(r"direct_packets_stat \d+", "", "\n---\n".join(out))
    return re.sub(r"packets \d+ bytes \d+", "packets _ bytes _", state)
