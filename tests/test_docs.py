"""The docs stay true to the code: the CLI reference is regenerated and compared."""

import subprocess
import sys

from conftest import ROOT


def test_cli_reference_is_current():
    done = subprocess.run([sys.executable, "docs/cli_reference.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
