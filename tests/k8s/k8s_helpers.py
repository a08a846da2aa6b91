"""What the tests of tests/k8s share."""

from __future__ import annotations

import json
import subprocess
import time

SERVICE_CHARTS = ("gateway", "trigger-evaluator", "map-vision", "triton", "label-store", "inference", "trainer")


def wait_established(kubectl: str, env: dict[str, str], crds: list[str], timeout: float = 60) -> None:
    """Until every CRD's API is served (its Established condition True; the condition appears a
    moment after the CRD itself)."""
    deadline = time.monotonic() + timeout
    for crd in crds:
        while True:
            done = subprocess.run([kubectl, "get", f"crd/{crd}", "-o", "json"], capture_output=True, text=True, env=env, timeout=60)
            conditions = json.loads(done.stdout).get("status", {}).get("conditions") or [] if done.returncode == 0 else []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            assert time.monotonic() < deadline, f"CRD {crd} not established after {timeout:.0f} s"
            time.sleep(0.5)
