"""The README's command table is generated from the commands' help (cog) and must match it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_command_table_matches_the_help():
    result = subprocess.run(
        [sys.executable, "-m", "cogapp", "--check", "--diff", "--check-fail-msg", "run: cog -r README.md", "README.md"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
