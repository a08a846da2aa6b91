"""The code passes mypy (configured in pyproject.toml: [tool.mypy])."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_finds_nothing():
    pytest.importorskip("mypy", reason="mypy is not installed in this environment (it comes with the `test` extra: requirements.lock)")
    # Run by this interpreter: the pydantic plugin and the third-party packages' types come from its environment.
    # The incremental cache (.mypy_cache, git-ignored) makes a second run take seconds instead of about a minute.
    done = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "pyproject.toml"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"mypy (files and settings in pyproject.toml [tool.mypy]):\n{done.stdout[-6000:]}{done.stderr[-2000:]}"
