"""`chaos init` writes a commented experiment (or game day) from flags, or from answers typed
on a terminal, and only ever writes a file that `chaos validate` — run separately, as a user
would — accepts. Wrong answers exit 2 with the loader's located messages and leave nothing.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

import yaml

from tests.conftest import chaos_cmd, run_chaos


def init(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(chaos_cmd("init", *args), capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, stdin=subprocess.DEVNULL, check=False)


def validate(tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    return run_chaos("validate", str(tmp_path / name), timeout=120)


def test_flags_write_a_commented_experiment_that_validates(tmp_path: Path) -> None:
    result = init(tmp_path, "experiments/web.yaml", "--url", "http://127.0.0.1:8080/",
                  "--process", "web", "--availability", "99.5%", "--p95", "300ms",
                  "--for", "20s")
    assert result.returncode == 0, result.stderr
    assert "wrote experiments/web.yaml" in result.stdout
    check = validate(tmp_path, "experiments/web.yaml")
    assert check.returncode == 0, check.stderr
    text = (tmp_path / "experiments/web.yaml").read_text()
    assert text.startswith("# Written by `chaos init`")
    doc = yaml.safe_load(text)
    assert doc["hypothesis"]["traffic"]["http"]["url"] == "http://127.0.0.1:8080/"
    assert doc["hypothesis"]["checks"] == ["availability >= 99.5%", "latency.p95 < 300ms"]
    (fault,) = doc["faults"]
    assert fault["type"] == "process.suspend" and fault["duration"] == "20s"
    assert fault["target"] == {"process": {"name": "web"}, "count": 1}
    assert "# children: false" in text  # optional parameters shown, commented out
    assert os.listdir(tmp_path / "experiments") == ["web.yaml"]  # no temporary left


def test_fault_parameters_and_pods(tmp_path: Path) -> None:
    result = init(tmp_path, "api.yaml", "--url", "http://api.shop/", "--pods", "app=api,tier=fe",
                  "-n", "shop", "--fault", "network.latency", "--with", "delay=200ms",
                  "--with", "jitter=20ms")
    assert result.returncode == 0, result.stderr
    assert validate(tmp_path, "api.yaml").returncode == 0
    (fault,) = yaml.safe_load((tmp_path / "api.yaml").read_text())["faults"]
    assert fault["with"] == {"delay": "200ms", "jitter": "20ms"}
    assert fault["target"]["pods"] == {"labels": {"app": "api", "tier": "fe"},
                                       "namespace": "shop"}


def test_instant_faults_get_no_duration(tmp_path: Path) -> None:
    result = init(tmp_path, "kill.yaml", "--url", "http://x/", "--process", "web",
                  "--fault", "process.kill")
    assert result.returncode == 0, result.stderr
    assert "duration" not in yaml.safe_load((tmp_path / "kill.yaml").read_text())["faults"][0]


def test_answers_that_do_not_validate_write_nothing_and_say_where(tmp_path: Path) -> None:
    result = init(tmp_path, "lat.yaml", "--url", "http://x/", "--process", "web",
                  "--fault", "network.latency")  # no delay; and a process is no proxy
    assert result.returncode == 2
    assert "lat.yaml:" in result.stderr and "faults[0].with.delay" in result.stderr
    assert "nothing was written" in result.stderr and "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []
    result = init(tmp_path, "bad.yaml", "--url", "http://x/", "--process", "web",
                  "--p95", "fast")
    assert result.returncode == 2 and "bad.yaml:" in result.stderr and "fast" in result.stderr
    assert os.listdir(tmp_path) == []


def test_without_a_terminal_missing_answers_are_usage_errors(tmp_path: Path) -> None:
    result = init(tmp_path, "x.yaml", "--process", "web")
    assert result.returncode == 2 and "--url" in result.stderr
    result = init(tmp_path, "x.yaml", "--url", "http://x/")
    assert result.returncode == 2 and "--process" in result.stderr
    result = init(tmp_path, "x.yaml", "--url", "http://x/", "--process", "a", "--pods", "app=b")
    assert result.returncode == 2 and "one target" in result.stderr
    assert os.listdir(tmp_path) == []


def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("# mine\n")
    args = ("mine.yaml", "--url", "http://x/", "--process", "web")
    result = init(tmp_path, *args)
    assert result.returncode == 2 and "--force" in result.stderr
    assert (tmp_path / "mine.yaml").read_text() == "# mine\n"
    assert init(tmp_path, *args, "--force").returncode == 0
    assert validate(tmp_path, "mine.yaml").returncode == 0


def test_on_a_terminal_missing_answers_are_asked(tmp_path: Path) -> None:
    answers = iter(["http://127.0.0.1:9000/health", "pods", "app=web", "pod.delete"])
    pid, fd = pty.fork()
    if pid == 0:  # the child: chaos init on a real terminal
        os.chdir(tmp_path)
        os.execv(chaos_cmd()[0], chaos_cmd("init", "asked.yaml"))
    seen, deadline = b"", time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal: done
                break
            if not chunk:
                break
            seen += chunk
            if seen.rstrip().endswith((b":", b"]:")):
                os.write(fd, next(answers).encode() + b"\n")
                seen += b"\n"
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen.decode(errors="replace")
    assert b"URL of the service" in seen and b"What does the fault hit" in seen
    doc = yaml.safe_load((tmp_path / "asked.yaml").read_text())
    assert doc["faults"][0]["target"]["pods"] == {"labels": {"app": "web"}}
    assert doc["faults"][0]["type"] == "pod.delete"
    assert validate(tmp_path, "asked.yaml").returncode == 0


def test_a_game_day_over_written_experiments(tmp_path: Path) -> None:
    assert init(tmp_path, "experiments/a.yaml", "--url", "http://x/", "--process", "a"
                ).returncode == 0
    result = init(tmp_path, "gamedays/day.yaml", "--gameday", "--title", "Weekly",
                  "--experiment", "experiments/a.yaml")
    assert result.returncode == 0, result.stderr
    check = validate(tmp_path, "gamedays/day.yaml")
    assert check.returncode == 0 and "game day: 1 experiment" in check.stdout, check.stderr
    doc = yaml.safe_load((tmp_path / "gamedays/day.yaml").read_text())
    assert doc["title"] == "Weekly" and doc["experiments"] == ["../experiments/a.yaml"]
    result = init(tmp_path, "gamedays/other.yaml", "--gameday", "--experiment", "nope.yaml")
    assert result.returncode == 2 and "other.yaml:" in result.stderr
    assert "nope.yaml" in result.stderr and not (tmp_path / "gamedays/other.yaml").exists()
