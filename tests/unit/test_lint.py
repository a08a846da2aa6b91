"""The code passes ruff (lint rules and import order configured in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "services", "tests", "bench"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"ruff check services tests bench (fix with --fix where it says so):\n{done.stdout[-6000:]}{done.stderr[-2000:]}"
