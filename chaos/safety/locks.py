"""Per-target locks, so two runs cannot fight over one target.

flock on a file per target key: the kernel drops the lock when the holder dies, so a crashed
run never leaves a stale lock behind. The file names the holder for the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path

from chaos.errors import TargetLocked
from chaos.safety.ledger import unusable


class TargetLocks:
    def __init__(self, state_dir: Path, run: str) -> None:
        self.directory = state_dir / "locks"
        self.run = run
        self._held: dict[str, int] = {}

    def _path(self, key: str) -> Path:
        return self.directory / (hashlib.sha1(key.encode()).hexdigest()[:20] + ".lock")

    def acquire(self, key: str, label: str) -> None:
        if key in self._held:
            return
        path = self._path(key)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise unusable(self.directory, exc, f"lock {label}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except ValueError:
                holder = {}
            os.close(fd)
            raise TargetLocked(f"{label} is already targeted by run {holder.get('run', '?')} "
                               f"(pid {holder.get('pid', '?')})") from None
        self._held[key] = fd
        try:  # who holds it is for the other run's message only: the flock is the lock
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"run": self.run, "pid": os.getpid(), "key": key}).encode(),
                      0)
        except OSError:
            pass

    def release_all(self) -> None:
        # The files stay: unlinking a lock file races with a third run that opened it already
        # and would then hold a lock on a file nobody else can see.
        for fd in self._held.values():
            with contextlib.suppress(OSError):  # a full or read-only disk: the flock still goes
                os.ftruncate(fd, 0)
            os.close(fd)
        self._held.clear()
