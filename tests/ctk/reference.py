"""Chaos Toolkit's own engine (chaostoolkit-lib's run_experiment) on a file, in its own process:
the reference our runs are compared with. Prints the journal as JSON on stdout.

    python -m tests.ctk.reference FILE [--rollback-strategy S] [--hypothesis-strategy S]
                                       [--var NAME=VALUE]... [--journal PATH]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from chaoslib import convert_vars, merge_vars
from chaoslib.experiment import run_experiment
from chaoslib.loader import load_experiment
from chaoslib.types import Schedule, Strategy


def main() -> int:
    # Ctrl-C as a user's terminal gives it, even when the test run was started in the
    # background by a shell, which makes children inherit SIGINT ignored (Python then never
    # raises KeyboardInterrupt, and chaoslib would run to the end)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--rollback-strategy", default="default")
    parser.add_argument("--hypothesis-strategy", default="default")
    parser.add_argument("--hypothesis-frequency", type=float, default=1.0)
    parser.add_argument("--fail-fast", action="store_true")
    parser.add_argument("--var", action="append", default=[])
    parser.add_argument("--journal")
    args = parser.parse_args()
    experiment = load_experiment(args.path)
    journal = run_experiment(
        experiment, settings={"runtime": {"rollbacks": {"strategy": args.rollback_strategy}}},
        experiment_vars=merge_vars(convert_vars(args.var), []),
        strategy=Strategy.from_string(args.hypothesis_strategy),
        schedule=Schedule(continuous_hypothesis_frequency=args.hypothesis_frequency,
                          fail_fast=args.fail_fast))
    text = json.dumps(journal, default=str)
    if args.journal:
        with open(args.journal, "w") as handle:
            handle.write(text)
    print("@@journal@@" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
