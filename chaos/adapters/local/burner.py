"""The resource worker: a child process that holds CPU, memory, IO, descriptors or threads.

Run as `python -m chaos.adapters.local.burner --tag T --deadline EPOCH --parent PID MODE ...` by
the resource adapter. It imports nothing from chaos, so it starts fast, and it ends by itself:

- at its deadline (wall clock, checked at least every 100 ms), even if nobody reverts it;
- when its parent dies: the kernel sends SIGTERM (PR_SET_PDEATHSIG, set by the adapter) and the
  worker also notices its parent pid changing, in case the signal was lost;
- on SIGTERM/SIGINT, removing its own files.

So even the runner *and* the watchdog dying cannot leave a burner running. It prints one line,
`ready` or `error: ...`, once it holds its load (or fails to), and nothing else.

The CPU duty cycle is closed-loop on the worker's own CPU time (CLOCK_PROCESS_CPUTIME_ID, the
same clock /proc/PID/stat reports): each 100 ms period it spins until it has used its share plus
whatever earlier periods fell short (bounded), then sleeps. Its own overhead (the loop, the
syscalls, being preempted) is therefore measured and corrected, not estimated.
"""

from __future__ import annotations

import argparse
import mmap
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

PERIOD = 0.1  # duty-cycle period and the longest the worker goes without checking its limits
PAGE = os.sysconf("SC_PAGE_SIZE")
MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)  # Linux 5.14; Python 3.11 lacks it


class Limits:
    """When the worker must stop: deadline passed, parent gone, or asked to."""

    def __init__(self, deadline: float, parent: int) -> None:
        self.end = time.monotonic() + (deadline - time.time())
        self.parent = parent
        self.stop = False

    def over(self) -> bool:
        return self.stop or time.monotonic() >= self.end or os.getppid() != self.parent

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds` in short steps; True if the worker must stop."""
        until = time.monotonic() + seconds
        while not self.over():
            left = until - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, PERIOD))
        return True


def fail(message: str) -> NoReturn:
    """Tell the adapter why the worker cannot hold its load (its first line of output), and exit."""
    print(f"error: {message}", flush=True)
    raise SystemExit(3)


def level(load: float, ramp: float, elapsed: float) -> float:
    return load if ramp <= 0 else load * min(1.0, elapsed / ramp)


def burn_cpu(limits: Limits, load: float, ramp: float) -> None:
    start = last = time.monotonic()
    cpu0 = time.process_time()
    wanted = 0.0  # CPU seconds the worker should have used so far
    while not limits.over():
        now = time.monotonic()
        share = level(load, ramp, now - start)
        wanted += share * (now - last)
        last = now
        used = time.process_time() - cpu0
        # Catch up on (or give back) earlier shortfall, but never more than one period's worth:
        # after being starved by a busy machine the worker must not burst at 100%.
        debt = max(-share * PERIOD, min(share * PERIOD, wanted - used))
        if wanted - used > share * PERIOD:
            wanted = used + share * PERIOD
        busy = max(0.0, min(PERIOD, share * PERIOD + debt))
        cpu_start = time.process_time()
        wall_end = now + PERIOD
        while time.process_time() - cpu_start < busy and time.monotonic() < wall_end:
            pass
        rest = wall_end - time.monotonic()
        if rest > 0:
            time.sleep(rest)


def own_rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def touch(area: mmap.mmap, offset: int, size: int) -> None:
    """Make pages resident: the kernel faults them in for writing (Linux 5.14+), else we write."""
    try:
        area.madvise(MADV_POPULATE_WRITE, offset, size)
    except (OSError, ValueError):
        area[offset:offset + size] = b"\xa5" * size


def hold_memory(limits: Limits, size: int, ramp: float, ready: Callable[[], None]) -> None:
    # The worker's own RSS (the interpreter) counts towards the target: the hog as a whole
    # holds `size`, which is what an outside observer (psutil, /proc) measures.
    size = max(PAGE, size - own_rss())
    size -= size % PAGE
    area = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    chunk = 16 << 20
    start = time.monotonic()
    if ramp > 0:
        ready()
    for offset in range(0, size, chunk):
        n = min(chunk, size - offset)
        touch(area, offset, n)
        if ramp > 0:
            due = start + ramp * (offset + n) / size
            if limits.wait(max(0.0, due - time.monotonic())):
                return
        elif limits.over():
            return
    if ramp <= 0:
        ready()
    limits.wait(float("inf"))


def hold_fds(limits: Limits, count: int, ready: Callable[[], None]) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if count + 16 > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 64), hard))
    held = []
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        for _ in range(count):
            held.append(os.dup(null))
    except OSError as exc:
        fail(f"opened {len(held)} of {count} descriptors: {exc.strerror}")
    ready()
    limits.wait(float("inf"))


def hold_threads(limits: Limits, count: int, ready: Callable[[], None]) -> None:
    threading.stack_size(64 * 1024)
    release = threading.Event()
    started = 0
    try:
        for _ in range(count):
            threading.Thread(target=release.wait, daemon=True).start()
            started += 1
    except RuntimeError as exc:
        fail(f"started {started} of {count} threads: {exc}")
    ready()
    limits.wait(float("inf"))
    release.set()


def hammer_io(limits: Limits, path: str, mode: str, block: int, file_size: int,
              ready: Callable[[], None]) -> None:
    data = os.urandom(block)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if mode != "write":  # reads need something to read
            for offset in range(0, file_size, block):
                os.pwrite(fd, data, offset)
            os.fdatasync(fd)
        ready()
        writing = mode != "read"
        while not limits.over():
            if writing:
                for offset in range(0, file_size, block):
                    os.pwrite(fd, data, offset)
                    if limits.over():
                        return
                os.fdatasync(fd)  # to the device, not just the page cache
            else:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # from the device
                for offset in range(0, file_size, block):
                    os.pread(fd, block, offset)
                    if limits.over():
                        return
            if mode == "mixed":
                writing = not writing
    finally:
        os.close(fd)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _join(paths: list[str]) -> None:
    """Enter a target process's cgroups, so that the target feels (and its limits count) us."""
    for path in paths:
        try:
            with open(path, "w") as procs:
                procs.write(str(os.getpid()))
        except OSError as exc:
            fail(f"cannot join cgroup {os.path.dirname(path)}: "
                             f"{exc.strerror or exc}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chaos-burner")
    parser.add_argument("--tag", required=True)
    parser.add_argument("--deadline", type=float, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--join", action="append", default=[])
    parser.add_argument("--core", type=int)
    sub = parser.add_subparsers(dest="mode", required=True)
    cpu = sub.add_parser("cpu")
    cpu.add_argument("--load", type=float, required=True)
    cpu.add_argument("--ramp", type=float, default=0.0)
    memory = sub.add_parser("memory")
    memory.add_argument("--bytes", type=int, required=True)
    memory.add_argument("--ramp", type=float, default=0.0)
    io = sub.add_parser("io")
    io.add_argument("--path", required=True)
    io.add_argument("--io-mode", default="write", choices=("read", "write", "mixed"))
    io.add_argument("--block", type=int, required=True)
    io.add_argument("--file-size", type=int, required=True)
    for name in ("fds", "threads"):
        sub.add_parser(name).add_argument("--count", type=int, required=True)
    return parser


def _stop(limits: Limits) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        limits.stop = True
        raise SystemExit(0)

    return handler


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    limits = Limits(args.deadline, args.parent)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop(limits))
    if limits.over():
        return 0
    try:  # the hogs go first if the kernel has to kill something
        with open("/proc/self/oom_score_adj", "w") as adj:
            adj.write("1000")
    except OSError:
        pass
    _join(args.join)
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})

    def ready() -> None:
        print("ready", flush=True)

    if args.mode == "cpu":
        ready()
        burn_cpu(limits, args.load, args.ramp)
    elif args.mode == "memory":
        hold_memory(limits, args.bytes, args.ramp, ready)
    elif args.mode == "io":
        hammer_io(limits, args.path, args.io_mode, args.block, args.file_size, ready)
    elif args.mode == "fds":
        hold_fds(limits, args.count, ready)
    else:
        hold_threads(limits, args.count, ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
