"""A real Docker engine for the container tests, and a small image built offline.

The engine: the one DOCKER_HOST (or /var/run/docker.sock) answers on, else a `dockerd` started
here with its own data root, exec root, socket and bridge (its own subnet; iptables left alone,
published ports through docker-proxy), stopped at the end. Nothing can be pulled, so the image
is a rootfs of Debian's static busybox (`sh`, `sleep`, `httpd`) fed to `docker import`.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE = "chaos-test/busybox:1"
APPLETS = ("sh", "sleep", "httpd", "cat", "ls", "kill", "nc", "true")
TIMEOUT = 60


@dataclass(frozen=True)
class Engine:
    host: str  # DOCKER_HOST for clients, e.g. unix:///tmp/.../docker.sock
    image: str
    cli: tuple[str, ...] = ()  # the engine's own CLI (podman with its storage); else docker

    def docker(self, *argv: str, check: bool = True,
               timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        """The engine's CLI: `docker -H host ...`, or `podman --root ... ...` for Podman."""
        command = [*(self.cli or ("docker", "-H", self.host)), *argv]
        return subprocess.run(command, capture_output=True, text=True, check=check,
                              timeout=timeout)

    def inspect(self, name: str, template: str) -> str:
        result = self.docker("inspect", "-f", template, name, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    def run(self, name: str, *argv: str, options: tuple[str, ...] = ()) -> str:
        """A detached container of the test image; its id."""
        return self.docker("run", "-d", "--name", name, *options, self.image, *argv).stdout.strip()

    def remove(self, *names: str) -> None:
        if names:
            self.docker("rm", "-f", *names, check=False)


def _answers(host: str) -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "-H", host, "version", "-f", "{{.Server.Version}}"],
                              capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def busybox() -> str | None:
    """A statically linked busybox (Debian's busybox-static), which runs in an empty rootfs."""
    for path in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(path):
            out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=10)
            if "not a dynamic executable" in out.stdout + out.stderr:
                return path
    return None


def build_image(engine_host: str, box: str,
                cli: tuple[str, ...] = (), image: str = IMAGE) -> None:
    """The busybox rootfs imported as `image`, by `docker -H engine_host` or the given CLI."""
    with tempfile.TemporaryDirectory(prefix="chaos-rootfs-") as tmp:
        tar_path = Path(tmp, "rootfs.tar")
        with tarfile.open(tar_path, "w") as tar:
            for folder in ("bin", "tmp", "www", "proc", "sys", "dev", "etc"):
                info = tarfile.TarInfo(folder)
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
                tar.addfile(info)
            tar.add(box, "bin/busybox")
            for applet in APPLETS:
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
            page = b"ok\n"
            info = tarfile.TarInfo("www/index.html")
            info.size = len(page)
            tar.addfile(info, io.BytesIO(page))
        subprocess.run([*(cli or ("docker", "-H", engine_host)), "import", str(tar_path), image],
                       check=True, capture_output=True, timeout=TIMEOUT)


@contextlib.contextmanager
def own_dockerd() -> Iterator[str]:
    """A private dockerd on its own socket and bridge; the DOCKER_HOST to reach it."""
    tag = uuid.uuid4().hex[:6]
    base = Path(tempfile.mkdtemp(prefix="chaos-dockerd-"))
    bridge = f"chbr{tag}"
    subnet = f"172.{20 + int(tag[:2], 16) % 12}.{int(tag[2:4], 16)}"
    host = f"unix://{base}/docker.sock"

    def ip(*argv: str) -> None:
        subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=10)

    ip("link", "add", bridge, "type", "bridge")
    log = open(base / "dockerd.log", "wb")  # noqa: SIM115 - closed below
    proc = None
    try:
        ip("addr", "add", f"{subnet}.1/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        proc = subprocess.Popen(
            ["dockerd", "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
             "-H", host, "--pidfile", str(base / "docker.pid"), "--bridge", bridge,
             "--iptables=false", "--ip-masq=false", "--ip6tables=false"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + TIMEOUT
        while not _answers(host):
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError("dockerd did not start: "
                                   + (base / "dockerd.log").read_text()[-2000:])
            time.sleep(0.2)
        yield host
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, timeout=10,
                       check=False)
        for mount in mounts_under(base):  # dockerd leaves its netns bind mount behind
            subprocess.run(["umount", "-l", mount], capture_output=True, timeout=10,
                           check=False)
        shutil.rmtree(base, ignore_errors=True)


def mounts_under(base: Path) -> list[str]:
    with open("/proc/mounts") as file:
        points = [line.split()[1] for line in file]
    return sorted((p for p in points if p.startswith(f"{base}/")), reverse=True)


def unavailable() -> str | None:
    """Why no engine can run here (the skip reason), or None."""
    if shutil.which("docker") is None or shutil.which("dockerd") is None:
        return "no docker/dockerd binaries (apt-get install docker.io)"
    if os.geteuid() != 0:
        return "starting dockerd needs root"
    if busybox() is None:
        return "no static busybox to build the test image (apt-get install busybox-static)"
    return None


@contextlib.contextmanager
def engine() -> Iterator[Engine]:
    """The engine for this test session, with the test image imported."""
    existing = [h for h in (os.environ.get("DOCKER_HOST"), "unix:///var/run/docker.sock")
                if h and h.startswith("unix://") and _answers(h)]
    box = busybox()
    assert box is not None
    with contextlib.ExitStack() as stack:
        host = existing[0] if existing else stack.enter_context(own_dockerd())
        build_image(host, box)
        yield Engine(host, IMAGE)
