"""The local Kubernetes control plane (`longtail k8s up`: etcd, kube-apiserver, controller manager,
scheduler, kwok's simulated nodes), started once per test session by the project's own launcher,
and helpers to install the charts on it. Every test works in namespaces it creates itself.

kwok plays the kubelet: pods on its nodes become Running and Ready, but no container runs. What
these tests prove is what the API server and the controllers do with the charts' objects."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from k8s_helpers import SERVICE_CHARTS

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if "/tests/k8s/" in str(item.fspath):
            item.add_marker(pytest.mark.k8s)


def _tool(script: str) -> str:
    return subprocess.run([str(ROOT / "scripts" / script)], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def cluster() -> Iterator[dict[str, str]]:
    """KUBECONFIG of the running control plane (started here when not yet running; stopped at the
    end only if this session started it)."""
    from longtail_dev.infra import Launcher, k8s

    launcher = Launcher(say=lambda m: print(f"k8s: {m}"), components=k8s.COMPONENTS, state_name="k8s")
    running = {s.name for s in launcher.status() if s.ready}
    env = launcher.up()
    # the example node pool that the charts' production values pin the trainer to (ci/external.yaml)
    from kubernetes import client

    client.CoreV1Api(k8s.api()).patch_node(k8s.node_names()[0], {"metadata": {"labels": {"longtail.example.com/pool": "training"}}})
    try:
        yield {**env, "tools": str(k8s.tools())}
    finally:
        if not running:
            launcher.down()


@pytest.fixture(scope="session")
def kubectl(cluster) -> str:
    return _tool("kubectl-tools")


@pytest.fixture(scope="session")
def helm(cluster) -> str:
    return _tool("helm-tools")


@pytest.fixture(scope="session")
def charts(helm, tmp_path_factory) -> Path:
    """A copy of charts/ with the dependencies vendored (charts/README.md, "Build before you render"), once per session."""
    import shutil

    root = tmp_path_factory.mktemp("charts")
    env = {**os.environ, "HOME": str(root), "HELM_CACHE_HOME": str(root / ".helm-cache"), "HELM_CONFIG_HOME": str(root / ".helm-config"), "HELM_DATA_HOME": str(root / ".helm-data")}
    for c in ("longtail-lib", *SERVICE_CHARTS, "longtail"):
        shutil.copytree(ROOT / "charts" / c, root / c, ignore=shutil.ignore_patterns("charts", "*.tgz"))
    for c in (*SERVICE_CHARTS, "longtail"):
        subprocess.run([helm, "dependency", "build", str(root / c)], capture_output=True, text=True, check=True, env=env)
    return root


class Kube:
    """kubectl and helm on the local control plane, in one namespace of the test's own."""

    def __init__(self, kubectl: str, helm: str, kubeconfig: str, namespace: str, workdir: Path) -> None:
        self.kubectl_bin, self.helm_bin, self.namespace, self.workdir = kubectl, helm, namespace, workdir
        self.env = {**os.environ, "KUBECONFIG": kubeconfig, "HOME": str(workdir), "HELM_CACHE_HOME": str(workdir / "helm-cache"), "HELM_CONFIG_HOME": str(workdir / "helm-config"), "HELM_DATA_HOME": str(workdir / "helm-data")}

    def run(self, *cmd: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run(list(cmd), capture_output=True, text=True, env=self.env, cwd=self.workdir, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}{done.stdout[-2000:]}")
        return done

    def kubectl(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.run(self.kubectl_bin, "-n", self.namespace, *args, check=check, timeout=timeout)

    def helm(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        return self.run(self.helm_bin, "-n", self.namespace, *args, check=check, timeout=timeout)


@pytest.fixture
def kube(cluster, kubectl, helm, tmp_path) -> Iterator[Kube]:
    namespace = f"lt-{uuid.uuid4().hex[:8]}"
    k = Kube(kubectl, helm, cluster["KUBECONFIG"], namespace, tmp_path)
    k.run(kubectl, "create", "namespace", namespace)
    try:
        yield k
    finally:
        k.run(kubectl, "delete", "namespace", namespace, "--wait=false", check=False)
