"""Fixtures of the chart tests (helpers and constants: chart_helpers.py).

helm comes from scripts/helm-tools (built once with `go install`, cached in ~/.cache/longtail/bin),
kubectl (for the Secrets block of docs/deploy.md) from scripts/kubectl-tools (built once from
scripts/kubectl/, cached there too); the tests skip only if they cannot be installed. Renders are
compared with tests/charts/golden/; after an intended change, regenerate them with

    UPDATE_GOLDEN=1 ~/.cache/longtail/venv/bin/python -m pytest tests/charts -q

and review the diff like code. The suites: test_charts_common.py (what every chart satisfies,
parametrized over the charts and their ci/*.yaml values), test_chart_<chart>.py (one per chart:
the service charts, the umbrella `longtail` and the library `longtail-lib`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from chart_helpers import APP_CHARTS, CHARTS, Renderer, go_built_tool, run


@pytest.fixture(scope="session")
def helm() -> str:
    return go_built_tool("helm")  # ~1.5-3 min the first time


@pytest.fixture(scope="session")
def kubectl() -> str:
    return go_built_tool("kubectl")  # ~1-2 min the first time


@pytest.fixture(scope="session")
def charts(helm: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of charts/ with every dependency built from Chart.lock (`helm dependency build`), so
    no test reads a stale vendored tgz and the work tree is left untouched. Fails when a Chart.lock
    is out of sync with its Chart.yaml."""
    dest = tmp_path_factory.mktemp("helm") / "charts"
    shutil.copytree(CHARTS, dest, ignore=shutil.ignore_patterns("*.tgz"))
    for name in APP_CHARTS:
        run([helm, "dependency", "build", dest / name])
    return dest


@pytest.fixture(scope="session")
def render(helm: str, charts: Path) -> Renderer:
    return Renderer(helm, charts)
