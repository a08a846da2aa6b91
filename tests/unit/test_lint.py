"""The code passes ruff: lint rules, import order and formatting, configured in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "services", "tests", "bench"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"ruff check services tests bench (fix with --fix where it says so):\n{done.stdout[-6000:]}{done.stderr[-2000:]}"


def test_code_is_formatted():
    done = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "services", "tests", "bench"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"ruff format --check services tests bench (run `ruff format services tests bench`):\n{done.stdout[-6000:]}{done.stderr[-2000:]}"
