"""A private Prometheus and Alertmanager for a scenario, declared as services: so a scenario can
expect its alert to fire (`detection:`) on one host with nothing installed but the Debian
packages (prometheus, prometheus-alertmanager), bound to 127.0.0.1 on the ports it is given.

Neither program expands variables in its configuration, so this writes one for the ports of
this run into a private temporary directory, then becomes the program (exec: the service's
process is Prometheus or Alertmanager itself, and stopping the service stops it).

    python -m chaos.demo.monitoring prometheus --port 18343 --rules alerts/x.yml \\
        --scrape front=127.0.0.1:18342 --alertmanager 127.0.0.1:18344
    python -m chaos.demo.monitoring alertmanager --port 18344
    python -m chaos.demo.monitoring ready --port 18343 --scrape front=... --alertmanager ...

`ready` is the Prometheus service's readiness check (exit 0 when ready): Prometheus answers
/-/ready before it has found its targets and its Alertmanager (its discovery sends updates up
to 5 s apart), and a fault injected before then could go unseen. Ready means every --scrape job
was scraped up (`up == 1`) and the --alertmanager is active.

Prometheus scrapes every target and evaluates the rules every --interval (1s: a scenario's
fault lasts seconds) and resends firing alerts every evaluation, so the time to detect is the
rule's, not a resend delay's. Alertmanager routes to a receiver that notifies nobody, with no
grouping wait: the scenario reads its API (/api/v2/alerts), as an on-call tool would.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import urllib.parse
import urllib.request
from typing import Any

from chaos.demo.serving import sweep_stale_dirs

PROGRAMS = {"prometheus": ("prometheus",),
            "alertmanager": ("prometheus-alertmanager", "alertmanager")}
KINDS = (*PROGRAMS, "ready")

ALERTMANAGER = """route: {receiver: nobody, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}
receivers: [{name: nobody}]
"""


def prometheus_config(args: argparse.Namespace) -> str:
    jobs = "".join(f"""  - job_name: {job}
    static_configs: [{{targets: ["{target}"]}}]
""" for job, _, target in (scrape.partition("=") for scrape in args.scrape))
    alerting = (f"""alerting:
  alertmanagers: [{{static_configs: [{{targets: ["{args.alertmanager}"]}}]}}]
""" if args.alertmanager else "")
    rules = ", ".join(f'"{os.path.abspath(path)}"' for path in args.rules)
    return f"""global:
  scrape_interval: {args.interval}
  scrape_timeout: {args.interval}
  evaluation_interval: {args.interval}
rule_files: [{rules}]
{alerting}scrape_configs:
{jobs}"""


def argv_for(program: str, args: argparse.Namespace, directory: str) -> list[str]:
    listen = f"--web.listen-address={args.host}:{args.port}"
    if args.kind == "alertmanager":
        config = os.path.join(directory, "alertmanager.yml")
        with open(config, "w", encoding="utf-8") as file:
            file.write(ALERTMANAGER)
        return [program, f"--config.file={config}", f"--storage.path={directory}/data", listen,
                "--cluster.listen-address="]  # no gossip: one private instance
    config = os.path.join(directory, "prometheus.yml")
    with open(config, "w", encoding="utf-8") as file:
        file.write(prometheus_config(args))
    return [program, f"--config.file={config}", f"--storage.tsdb.path={directory}/data", listen,
            f"--rules.alert.resend-delay={args.interval}"]


def ready(args: argparse.Namespace) -> int:
    base = f"http://{args.host}:{args.port}/api/v1"

    def get(path: str) -> Any:
        with urllib.request.urlopen(f"{base}/{path}", timeout=2) as answer:
            return json.load(answer)["data"]

    try:
        for job, _, _ in (scrape.partition("=") for scrape in args.scrape):
            query = urllib.parse.urlencode({"query": f'up{{job="{job}"}} == 1'})
            if not get(f"query?{query}")["result"]:
                print(f"not ready: job {job} not scraped up yet", file=sys.stderr)
                return 1
        if args.alertmanager and not get("alertmanagers")["activeAlertmanagers"]:
            print("not ready: no active Alertmanager yet", file=sys.stderr)
            return 1
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.demo.monitoring", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--scrape", action="append", default=[], metavar="JOB=HOST:PORT",
                        help="prometheus: a target to scrape (repeatable)")
    parser.add_argument("--rules", action="append", default=[], metavar="FILE",
                        help="prometheus: an alert rule file (repeatable)")
    parser.add_argument("--alertmanager", default=None, metavar="HOST:PORT",
                        help="prometheus: where to send alerts")
    parser.add_argument("--interval", default="1s", help="scrape and evaluation interval")
    args = parser.parse_args(argv)
    if bad := [s for s in args.scrape if "=" not in s]:
        parser.error(f"--scrape takes JOB=HOST:PORT, not {bad[0]!r}")
    if args.kind == "ready":
        return ready(args)
    if missing := [path for path in args.rules if not os.path.isfile(path)]:
        # Prometheus reads rule_files as globs: a missing file would silently load no rules
        parser.error(f"no rule file {os.path.abspath(missing[0])}")
    program = next(filter(None, map(shutil.which, PROGRAMS[args.kind])), None)
    if program is None:
        print(f"{args.kind} not found: install the {PROGRAMS[args.kind][0]} package",
              file=sys.stderr)
        return 1
    sweep_stale_dirs(f"chaos-{args.kind}-", "pid")
    directory = tempfile.mkdtemp(prefix=f"chaos-{args.kind}-")
    with open(os.path.join(directory, "pid"), "w", encoding="ascii") as file:
        file.write(f"{os.getpid()}\n")  # exec keeps the pid: the sweep knows when it is gone
    command = argv_for(program, args, directory)
    sys.stdout.flush()
    os.execv(program, command)


if __name__ == "__main__":
    sys.exit(main())
