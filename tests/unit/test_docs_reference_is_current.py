"""The field reference in docs/ is generated from the schema; it must not drift from the code."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_generated_reference_matches_the_code() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "gen_reference.py"), "--check"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, (
        "docs are stale: run `python docs/gen_reference.py --write`\n" + result.stdout +
        result.stderr)
