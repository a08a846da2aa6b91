"""The services that never run the network start without torch (it costs ~1 s and ~300 MB of RSS)."""

import os
import subprocess
import sys
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"


def test_the_label_store_starts_without_torch():
    code = ("import sys; import longtail.tasks, longtail.predictions, longtail.snapshots, label_store.__main__; "
            "loaded = [m for m in ('torch', 'longtail.model') if m in sys.modules]; print(loaded); sys.exit(1 if loaded else 0)")
    env = {**os.environ, "PYTHONPATH": str(SERVICES)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"torch loaded by: {done.stdout}{done.stderr[-2000:]}"
