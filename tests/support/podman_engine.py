"""A real Podman engine for the container tests: its Docker-compatible API socket.

`podman system service --time=0` (rootful: the tests run as root) on a socket in a temp dir,
with private storage (`--root`/`--runroot`/`--tmpdir`, overlay like Docker's overlay2), its
own network config dir and a containers.conf of its own (cgroupfs, file events, a static init
for `--init`, rlimits this machine allows: Podman's default nofile/nproc are above the hard
limits of many CI VMs, and runc then fails every container with "error setting rlimit type
7"). The busybox image is imported with `podman import`, the way docker_engine.py builds it
for Docker. At the end every container is removed, the service stopped, the mounts under the
temp dir unmounted, and what netavark added to the host (the podman0 bridge, its NETAVARK
iptables chains, its IPAM database) removed when it was not there before - nothing is left on
the machine.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import shlex
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.docker_engine import TIMEOUT, Engine, build_image, busybox, mounts_under

IMAGE = "localhost/chaos-test/busybox:1"
CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
init_path = "{init}"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


# files rootful Podman writes outside --root/--runroot (netavark's IPAM database, the image
# blob cache), with the directories it creates for them
HOST_FILES = ("/run/containers/networks/ipam.db",
              "/var/lib/containers/cache/blob-info-cache-v1.boltdb")


def _remove_new_files(before: set[str]) -> None:
    """The HOST_FILES (and their directories, when left empty) that were not there before."""
    for name in HOST_FILES:
        if name in before:
            continue
        path = Path(name)
        path.unlink(missing_ok=True)
        for folder in (path.parent, path.parent.parent):
            with contextlib.suppress(OSError):  # not empty, or gone: left as it is
                folder.rmdir()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=5)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(5)
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _answers(path: str) -> bool:
    """The Docker API's /_ping answers OK on the socket."""
    conn = _UnixConnection(path)
    try:
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def init_program() -> str:
    """What `--init` runs, bind-mounted into an empty rootfs, so statically linked: Podman's
    catatonit (a Recommends), else docker.io's docker-init (tini)."""
    for path in ("/usr/libexec/podman/catatonit", "/usr/bin/catatonit",
                 "/usr/bin/docker-init", "/usr/bin/tini-static"):
        if os.path.exists(path):
            out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=10)
            if "not a dynamic executable" in out.stdout + out.stderr:
                return path
    return ""


def unavailable() -> str | None:
    """Why Podman cannot run here (the skip reason), or None."""
    if shutil.which("podman") is None:
        return "no podman binary (apt-get install podman)"
    if os.geteuid() != 0:
        return "a rootful podman service needs root"
    if busybox() is None:
        return "no static busybox to build the test image (apt-get install busybox-static)"
    if not init_program():
        return "no init for `--init` (apt-get install catatonit)"
    return None


def _netavark_chains() -> dict[str, list[str]]:
    """The NETAVARK* chains per iptables table."""
    found: dict[str, list[str]] = {}
    for table in ("filter", "nat"):
        out = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True,
                             timeout=20, check=False).stdout
        found[table] = [line.split()[1] for line in out.splitlines()
                        if line.startswith("-N NETAVARK")]
    return found


def _remove_netavark_chains(before: dict[str, list[str]]) -> None:
    """The chains netavark added (and the jumps to them), when they were not there before."""
    for table, chains in _netavark_chains().items():
        added = [c for c in chains if c not in before.get(table, [])]
        if not added:
            continue
        out = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True,
                             timeout=20, check=False).stdout
        for line in out.splitlines():
            words = shlex.split(line)  # comments are quoted
            if words[:1] == ["-A"] and words[1] not in added and any(
                    f"-j {c}" in line for c in added):
                subprocess.run(["iptables", "-t", table, "-D", *words[1:]],
                               capture_output=True, timeout=20, check=False)
        for chain in added:
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True,
                           timeout=20, check=False)
        for chain in added:
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True,
                           timeout=20, check=False)


@contextlib.contextmanager
def engine() -> Iterator[Engine]:
    """A private rootful Podman service with the test image; its DOCKER_HOST and CLI."""
    base = Path(tempfile.mkdtemp(prefix="chaos-podman-"))
    (base / "containers.conf").write_text(CONF.format(init=init_program()))
    env = {**os.environ, "CONTAINERS_CONF": str(base / "containers.conf")}
    cli = ("env", f"CONTAINERS_CONF={base / 'containers.conf'}", "podman",
           "--root", str(base / "root"), "--runroot", str(base / "run"),
           "--tmpdir", str(base / "tmp"), "--network-config-dir", str(base / "net"),
           "--storage-driver", "overlay")
    sock = str(base / "podman.sock")
    had_bridge = Path("/sys/class/net/podman0").exists()
    chains = _netavark_chains()
    files = {f for f in HOST_FILES if os.path.exists(f)}
    log = open(base / "podman.log", "wb")  # noqa: SIM115 - closed below
    proc = None
    try:
        proc = subprocess.Popen([*cli[2:], "system", "service", "--time=0", f"unix://{sock}"],
                                env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        end = time.monotonic() + TIMEOUT
        while not _answers(sock):
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError("podman system service did not start: "
                                   + (base / "podman.log").read_text()[-2000:])
            time.sleep(0.2)
        box = busybox()
        assert box is not None
        build_image("", box, cli=cli, image=IMAGE)
        yield Engine(f"unix://{sock}", IMAGE, cli=cli)
    finally:
        subprocess.run([*cli, "rm", "-a", "-f", "-t", "0"], capture_output=True,
                       timeout=120, check=False)
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()
        for mount in mounts_under(base):
            subprocess.run(["umount", "-l", mount], capture_output=True, timeout=10,
                           check=False)
        if not had_bridge:
            subprocess.run(["ip", "link", "del", "podman0"], capture_output=True, timeout=10,
                           check=False)
        _remove_netavark_chains(chains)
        _remove_new_files(files)
        shutil.rmtree(base, ignore_errors=True)
