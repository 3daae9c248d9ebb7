"""System programs the tests run (or make chaos run), and the Debian package of each.

A test that needs one declares it - `@pytest.mark.needs("nft", "tc")`, or `tool("openssl")`
where it builds a command line - and, when it is missing, fails at once with one line naming
the package to install, instead of a CalledProcessError or FileNotFoundError traceback from
deep inside the test. `./scripts/test` installs them all (as root, with apt)."""

from __future__ import annotations

import shutil

import pytest

# program -> Debian package; scripts/test installs exactly these packages
PACKAGES = {
    "ip": "iproute2", "tc": "iproute2", "nft": "nftables", "iptables": "iptables",
    "ps": "procps", "redis-server": "redis-server", "nginx": "nginx",
    "prometheus": "prometheus", "chromium": "chromium", "openssl": "openssl",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "docker": "docker.io", "dockerd": "docker.io", "busybox": "busybox-static",
    "podman": "podman",
    "faketime": "faketime", "redis-sentinel": "redis-sentinel", "haproxy": "haproxy",
}


def missing(*programs: str) -> list[str]:
    """The programs not found on PATH (as chaos itself looks them up)."""
    return [p for p in programs if shutil.which(p) is None]


def require(*programs: str) -> None:
    """Fail the calling test in one line when a program is missing."""
    absent = missing(*programs)
    if absent:
        packages = sorted({PACKAGES.get(p, p) for p in absent})
        pytest.fail(f"needs {', '.join(absent)}, not found on PATH: install the Debian "
                    f"package{'s' if len(packages) > 1 else ''} {' '.join(packages)} "
                    "(`apt-get install " + " ".join(packages) + "`; ./scripts/test does it as "
                    "root)", pytrace=False)


def tool(program: str) -> str:
    """The program's path, for a command line; fails the test in one line when missing."""
    require(program)
    path = shutil.which(program)
    assert path is not None
    return path
