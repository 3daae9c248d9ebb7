"""What a command imports: the CLI run in a fresh interpreter, in-process, reporting sys.modules.

The interpreter running the tests has long imported everything, so import-cost promises
(`chaos --help` and `chaos validate` stay light) are measured in a new one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import json, sys
sys.argv = ["chaos", *json.loads(sys.argv[1])]
from chaos.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("\\n@@modules@@", json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def modules_after(*argv: str, path: tuple[str, ...] = ()) -> tuple[int, list[str]]:
    """(exit code, sorted module names) after `chaos ARGV`; `path` goes first on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(ROOT)])}
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.rsplit("@@modules@@", 1)[1])
    return report["code"], report["modules"]
