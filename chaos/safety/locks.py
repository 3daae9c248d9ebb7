"""Per-target locks, so two runs cannot fight over one target.

One byte per target key in one shared file, `<state dir>/locks/targets.lock`, locked with an
open-file-description lock (`F_OFD_SETLK`): the kernel drops it when the holder dies, so a
crashed run never leaves a stale lock behind, and locking a thousand targets costs a thousand
fcntl calls, not a thousand new files. (OFD locks, unlike POSIX `lockf` locks, belong to one
open file, so two runs in one process - a game day - still exclude each other.) The holder is
named from the ledger: the live run with an open injection on the same target.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import struct
from pathlib import Path

from chaos.errors import TargetLocked
from chaos.safety.ledger import Ledger, unusable

# struct flock: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid (+ pad)
_FLOCK = struct.Struct("@hhqqi4x")
# Linux >= 3.15; elsewhere POSIX record locks (then two runs in one process share their locks)
_SETLK = getattr(fcntl, "F_OFD_SETLK", fcntl.F_SETLK)


def _offset(key: str) -> int:
    """A byte in a sparse file; 56-bit hashes make two keys sharing one practically never."""
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:7], "big")


class TargetLocks:
    def __init__(self, state_dir: Path, run: str) -> None:
        self.directory = state_dir / "locks"
        self.state_dir = state_dir
        self.run = run
        self._fd: int | None = None
        self._held: set[str] = set()

    def acquire(self, key: str, label: str) -> None:
        if key in self._held:
            return
        if self._fd is None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.directory / "targets.lock", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise unusable(self.directory, exc, f"lock {label}") from exc
        lock = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, _offset(key), 1, 0)
        try:
            fcntl.fcntl(self._fd, _SETLK, lock)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise TargetLocked(f"{label} is already targeted by {self._holder(label)}") from None
        self._held.add(key)

    def _holder(self, label: str) -> str:
        from chaos.safety.recover import runner_alive

        for info in Ledger(self.state_dir).runs():
            if info.run != self.run and runner_alive(info) and any(
                    e.is_open and e.target == label for e in info.entries):
                return f"run {info.run} (pid {info.pid})"
        return "another run"

    def release_all(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops every lock this open file holds
            self._fd = None
        self._held.clear()
