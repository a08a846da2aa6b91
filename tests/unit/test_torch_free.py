"""The services that never run the network start without torch (it costs ~1 s and ~300 MB of RSS),
and so does the operator CLI (the images start every service through `longtail serve`)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[2] / "services"


@pytest.mark.parametrize(
    "module", ["label_store.__main__", "gateway.__main__", "trigger_evaluator.__main__", "map_vision.__main__", "longtail_cli.app", "longtail.tasks", "longtail.predictions", "longtail.snapshots", "longtail.synthetic.frames"]
)
def test_starts_without_torch(module):
    code = f"import sys; import {module}; sys.exit(1 if 'torch' in sys.modules else 0)"
    env = {**os.environ, "PYTHONPATH": str(SERVICES)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"importing {module} loads torch{(': ' + done.stderr[-2000:]) if done.stderr else ''}"
