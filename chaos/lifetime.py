"""Process lifetime: child processes that die with their parent.

Services, exec probes and fault workers are started with PR_SET_PDEATHSIG, so a runner killed
with SIGKILL does not leave them running: the kernel signals them when the runner's thread that
forked them exits.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
_libc: ctypes.CDLL | None = None


def _load_libc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            return None
    return _libc


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None]:
    """A preexec_fn: the child gets `sig` when this process dies (Linux; a no-op elsewhere)."""
    libc = _load_libc()  # loaded before fork: nothing is imported in the child
    parent = os.getpid()

    def preexec() -> None:
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec
