"""Screenshots of the live terminal views, from real runs in a real terminal (tmux).

    .venv/bin/python docs/gen_screenshots.py     # writes docs/img/*.png (needs tmux, chromium)

Each shot starts a command in a detached tmux window of a fixed size, waits until the screen
shows a given text (the status line mid-run), captures the pane with its colours
(`tmux capture-pane -e`), renders it as HTML and has headless chromium screenshot that page.
Nothing is drawn by hand: what the PNG shows is what the terminal showed.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
COLOURS = {"30": "#000", "31": "#e06c75", "32": "#98c379", "33": "#e5c07b", "34": "#61afef",
           "35": "#c678dd", "36": "#56b6c2", "37": "#dcdfe4"}
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def to_html(text: str, title: str) -> str:
    out, style = [], {"fg": None, "bold": False}
    pos = 0
    for match in SGR.finditer(text):
        out.append(_span(text[pos:match.start()], style))
        for code in (match.group(1) or "0").split(";"):
            if code in ("0", ""):
                style = {"fg": None, "bold": False}
            elif code == "1":
                style["bold"] = True
            elif code in COLOURS:
                style["fg"] = COLOURS[code]
            elif code == "39":
                style["fg"] = None
        pos = match.end()
    out.append(_span(text[pos:], style))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            "</title><style>body{margin:0;background:#1e2127}pre{margin:0;padding:14px 18px;"
            "color:#dcdfe4;font:14px/1.35 'DejaVu Sans Mono',monospace}</style></head><body>"
            f"<pre>{''.join(out)}</pre></body></html>")


def _span(text: str, style: dict[str, object]) -> str:
    if not text:
        return ""
    css = (f"color:{style['fg']};" if style["fg"] else "") + (
        "font-weight:bold;" if style["bold"] else "")
    return f"<span style='{css}'>{html.escape(text)}</span>" if css else html.escape(text)


def shot(name: str, command: str, until: str, *, width: int = 150, height: int = 24,
         env: dict[str, str] | None = None, timeout: float = 90,
         meanwhile: Callable[[], None] | None = None) -> Path:
    session = f"chaos-shot-{os.getpid()}"
    exports = " ".join(f"{k}={v}" for k, v in (env or {}).items())
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", str(width), "-y",
                    str(height), f"cd {ROOT} && {exports} {command}; sleep 600"], check=True)
    try:
        if meanwhile is not None:
            meanwhile()
        deadline = time.monotonic() + timeout
        while True:
            screen = subprocess.run(["tmux", "capture-pane", "-e", "-p", "-t", session],
                                    capture_output=True, text=True, check=True).stdout
            if re.search(until, SGR.sub("", screen)):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: {until!r} never showed:\n{screen}")
            time.sleep(0.1)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    lines = screen.rstrip("\n").splitlines()
    while lines and not SGR.sub("", lines[-1]).strip():
        lines.pop()
    page = Path(tempfile.mkdtemp()) / f"{name}.html"
    page.write_text(to_html("\n".join(lines), name))
    out = DOCS / "img" / f"{name}.png"
    out.parent.mkdir(exist_ok=True)
    rows = len(lines) + 1
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--window-size={width * 9 + 40},{rows * 19 + 30}",
                    f"--screenshot={out}", page.as_uri()], check=True,
                   capture_output=True, timeout=120)
    print(f"wrote {out}")
    return out


def main() -> None:
    python = sys.executable
    state = tempfile.mkdtemp(prefix="chaos-shots-")
    env = {"CHAOS_STATE_DIR": f"{state}/state", "CHAOS_RUNS_DIR": f"{state}/runs"}
    shot("live-run", f"{python} -m chaos run docs/img/live-view-demo.yaml",
         r">> during .*fault active.*p95 1\d\dms.*abort if", env=env, width=200)
    shot("live-run-summary", f"{python} -m chaos run docs/img/live-view-demo.yaml",
         r"journal: ", env=env, width=200, height=48, timeout=120)
    port = 18000 + os.getpid() % 1000
    upstream = subprocess.Popen([python, "-m", "chaos.demo.service", "--port", str(port)])
    try:
        def requests() -> None:  # a client of the test's own, through the proxy
            deadline = time.monotonic() + 30
            sent = 0
            while sent < 5 and time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port + 1}/", timeout=5).read()
                    sent += 1
                except OSError:
                    time.sleep(0.2)

        shot("live-proxy",
             f"{python} -m chaos proxy --listen 127.0.0.1:{port + 1} --upstream "
             f"127.0.0.1:{port} --fault network.latency --with delay=200ms --with jitter=20ms "
             "--for 10m", r"[1-9] accepted.*latency\(delay 200ms", env=env, height=4,
             meanwhile=requests)
    finally:
        upstream.terminate()
        upstream.wait(10)


if __name__ == "__main__":
    main()
