"""Every values file of charts/longtail/ci/ and of each service chart's ci/ installs on a real API
server and its workloads become Available, every HPA acting on a workload of its release; `helm upgrade` with a changed value rolls out; a node
drain respects the PodDisruptionBudget; ServiceMonitors and PrometheusRules are created and accepted
where the Prometheus Operator's CRDs are installed, and skipped (the install still clean) where they
are not. kwok plays the nodes: no container runs (docs/deploy.md §10)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from k8s_helpers import SERVICE_CHARTS, wait_established
from test_charts_install import workloads

ROOT = Path(__file__).resolve().parents[2]
CASES = [(chart, values.stem) for chart in ("longtail", *SERVICE_CHARTS) for values in sorted((ROOT / "charts" / chart / "ci").glob("*.yaml"))]


@pytest.fixture(scope="module")
def dashboards_namespace(cluster, kubectl, tmp_path_factory):
    """The observability values put the dashboards' ConfigMaps in `monitoring` (a namespace of ours)."""
    env = {"KUBECONFIG": cluster["KUBECONFIG"], "PATH": "/usr/bin:/bin", "HOME": str(tmp_path_factory.mktemp("kubectl-home"))}
    subprocess.run([kubectl, "create", "namespace", "monitoring"], capture_output=True, env=env)
    return "monitoring"


def not_available(kube) -> list[str]:
    late = []
    for name, w in workloads(kube).items():
        want = w["spec"].get("replicas", 1)
        ready = w["status"].get("availableReplicas" if w["kind"] == "Deployment" else "readyReplicas", 0)
        if ready != want:
            late.append(f"{name}: {ready}/{want} ready")
    return late


def assert_available(kube, timeout: float = 180) -> None:
    """Every Deployment and StatefulSet Available. Not `helm --wait`: it also waits for a
    LoadBalancer Service's address, which no load balancer gives here (ci/external.yaml has one)."""
    deadline = time.monotonic() + timeout
    while late := not_available(kube):
        assert time.monotonic() < deadline, late
        time.sleep(1)


def provide_claims(kube, values_file: Path) -> list[str]:
    """The PersistentVolumeClaims a values file expects to exist (e.g. the label store's SQLite
    volume), each bound to a PersistentVolume made for it, as an operator would provide them.
    Returns the volumes' names (cluster-scoped: the caller deletes them)."""
    values = yaml.safe_load(values_file.read_text()) or {}
    claims = [v["persistentVolumeClaim"]["claimName"] for v in values.get("volumes", []) if "persistentVolumeClaim" in v]
    volumes = []
    for claim in claims:
        volume = f"{kube.namespace}-{claim}"
        spec = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "", "hostPath": {"path": f"/var/tmp/{volume}"}, "claimRef": {"namespace": kube.namespace, "name": claim}}
        pvc = {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": volume, "resources": {"requests": {"storage": "1Gi"}}}
        (kube.workdir / f"{claim}.json").write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": [{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": volume}, "spec": spec}, {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim}, "spec": pvc}],
                }
            )
        )
        kube.kubectl("apply", "-f", str(kube.workdir / f"{claim}.json"))
        volumes.append(volume)
    return volumes


@pytest.mark.parametrize(("chart", "values"), CASES, ids=[f"{c}-{v}" for c, v in CASES])
def test_every_values_file_installs_and_becomes_available(kube, charts, dashboards_namespace, chart, values):
    values_file = ROOT / "charts" / chart / "ci" / f"{values}.yaml"
    volumes = provide_claims(kube, values_file)
    try:
        install_and_check(kube, charts, chart, values, values_file)
    finally:
        for volume in volumes:
            kube.run(kube.kubectl_bin, "delete", "persistentvolume", volume, "--wait=false", check=False)


def install_and_check(kube, charts, chart: str, values: str, values_file: Path) -> None:
    kube.helm("install", chart, str(charts / chart), "-f", str(values_file))
    assert bool(workloads(kube)) != (chart == "longtail" and values == "none"), "ci/none.yaml switches every service off; every other file installs workloads"
    assert_available(kube)
    assert_autoscalers_act_on_their_workloads(kube)
    kube.helm("uninstall", chart, "--wait", "--timeout", "2m")


def assert_autoscalers_act_on_their_workloads(kube, timeout: float = 90) -> None:
    """Every HPA names a workload of the release, and the HPA controller reaches it: it reads the
    target's scale (condition AbleToScale) and raises it to minReplicas (which it does before it
    looks at metrics: there is no metrics server here, so nothing beyond that is tested)."""
    hpas = json.loads(kube.kubectl("get", "horizontalpodautoscalers", "-o", "json").stdout)["items"]
    found = workloads(kube)
    for hpa in hpas:
        ref = hpa["spec"]["scaleTargetRef"]
        assert f"{ref['kind']}/{ref['name']}" in found and ref["apiVersion"] == "apps/v1", f"HPA {hpa['metadata']['name']} targets {ref}, not one of {sorted(found)}"
    deadline = time.monotonic() + timeout
    for hpa in hpas:
        name, ref = hpa["metadata"]["name"], hpa["spec"]["scaleTargetRef"]
        while True:
            status = json.loads(kube.kubectl("get", f"hpa/{name}", "-o", "json").stdout).get("status", {})
            able = {c["type"]: c for c in status.get("conditions", [])}.get("AbleToScale", {})
            replicas = workloads(kube)[f"{ref['kind']}/{ref['name']}"]["spec"].get("replicas", 0)
            if able.get("status") == "True" and replicas >= hpa["spec"].get("minReplicas", 1):
                break
            assert time.monotonic() < deadline, f"HPA {name}: AbleToScale {able}, {ref['name']} at {replicas} replicas (minReplicas {hpa['spec'].get('minReplicas', 1)})"
            time.sleep(1)
    assert_available(kube)


def test_helm_upgrade_with_a_changed_value_rolls_out(kube, charts):
    defaults = str(ROOT / "charts" / "gateway" / "ci" / "defaults.yaml")
    kube.helm("install", "gw", str(charts / "gateway"), "-f", defaults, "--wait", "--timeout", "3m")
    before = json.loads(kube.kubectl("get", "deployment/gw-gateway", "-o", "json").stdout)
    kube.helm("upgrade", "gw", str(charts / "gateway"), "-f", defaults, "--set", "log.level=DEBUG", "--wait", "--timeout", "3m")
    kube.kubectl("rollout", "status", "deployment/gw-gateway", "--timeout=120s")
    after = json.loads(kube.kubectl("get", "deployment/gw-gateway", "-o", "json").stdout)
    assert after["metadata"]["generation"] > before["metadata"]["generation"]  # a new pod template: the config checksum moved
    annotation = "checksum/config"
    assert after["spec"]["template"]["metadata"]["annotations"][annotation] != before["spec"]["template"]["metadata"]["annotations"][annotation]
    assert json.loads(kube.kubectl("get", "configmap/gw-gateway", "-o", "json").stdout)["data"]["LOG_LEVEL"] == "DEBUG"
    sets = json.loads(kube.kubectl("get", "replicasets", "-l", "app.kubernetes.io/instance=gw", "-o", "json").stdout)["items"]
    assert len(sets) == 2 and sorted(r["status"].get("replicas", 0) for r in sets) == [0, after["spec"]["replicas"]]  # the old one scaled down


def test_a_drain_respects_the_pod_disruption_budget(kube, charts):
    kube.helm("install", "pdb", str(charts / "gateway"), "-f", str(ROOT / "charts" / "gateway" / "ci" / "defaults.yaml"), "--set", "replicaCount=1", "--set", "pdb.minAvailable=1", "--wait", "--timeout", "3m")
    (pod,) = json.loads(kube.kubectl("get", "pods", "-l", "app.kubernetes.io/instance=pdb", "-o", "json").stdout)["items"]
    node = pod["spec"]["nodeName"]
    try:
        blocked = kube.run(kube.kubectl_bin, "drain", node, "--pod-selector=app.kubernetes.io/instance=pdb", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=15s", check=False, timeout=120)
        assert blocked.returncode != 0 and "disruption budget" in (blocked.stderr + blocked.stdout), blocked.stderr
        assert json.loads(kube.kubectl("get", f"pod/{pod['metadata']['name']}", "-o", "json").stdout)["metadata"].get("deletionTimestamp") is None  # still there
        # the chart's own budget for one replica (maxUnavailable 1) lets the drain through: the pod moves
        kube.helm("upgrade", "pdb", str(charts / "gateway"), "-f", str(ROOT / "charts" / "gateway" / "ci" / "defaults.yaml"), "--set", "replicaCount=1")
        budget = json.loads(kube.kubectl("get", "pdb/pdb-gateway", "-o", "json").stdout)["spec"]
        assert budget.get("maxUnavailable") == 1 and "minAvailable" not in budget, budget
        kube.run(kube.kubectl_bin, "drain", node, "--pod-selector=app.kubernetes.io/instance=pdb", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=90s", timeout=150)
        kube.kubectl("rollout", "status", "deployment/pdb-gateway", "--timeout=120s")
        pods = json.loads(kube.kubectl("get", "pods", "-l", "app.kubernetes.io/instance=pdb", "-o", "json").stdout)["items"]
        assert [p["spec"]["nodeName"] for p in pods if not p["metadata"].get("deletionTimestamp")] != [node]
    finally:
        kube.run(kube.kubectl_bin, "uncordon", node, check=False)


MONITORING_KINDS = ("servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com")


def test_monitoring_objects_exist_exactly_where_the_operators_crds_do(cluster, kube, charts, dashboards_namespace):
    values = ["-f", str(ROOT / "charts" / "longtail" / "ci" / "production.yaml"), "--set", "observability.prometheusRule.enabled=true"]
    crds = sorted((Path(cluster["tools"]) / "crds" / "prometheus-operator").glob("monitoring.coreos.com_*.yaml"))
    assert kube.run(kube.kubectl_bin, "get", "crd", "servicemonitors.monitoring.coreos.com", check=False).returncode != 0, "the Prometheus Operator's CRDs must not be installed before this test"
    # without the CRDs: a clean install, no monitoring objects, and the release notes say so
    installed = kube.helm("install", "longtail", str(charts / "longtail"), *values, "--wait", "--timeout", "5m")
    assert "were not created" in installed.stdout
    assert_available(kube)
    try:
        for f in crds:
            kube.run(kube.kubectl_bin, "apply", "--server-side", "-f", str(f))
        wait_established(kube.kubectl_bin, kube.env, list(MONITORING_KINDS))
        # with them: the upgrade creates every ServiceMonitor and the PrometheusRule, and the API server accepts them
        kube.helm("upgrade", "longtail", str(charts / "longtail"), *values, "--wait", "--timeout", "5m")
        monitors = json.loads(kube.kubectl("get", "servicemonitors", "-o", "json").stdout)["items"]
        rules = json.loads(kube.kubectl("get", "prometheusrules", "-o", "json").stdout)["items"]
        assert {m["metadata"]["name"] for m in monitors} == {f"longtail-{c}" for c in SERVICE_CHARTS}
        assert [r["metadata"]["name"] for r in rules] == ["longtail-alerts"] and rules[0]["spec"]["groups"]
        kube.helm("uninstall", "longtail", "--wait", "--timeout", "3m")
        assert json.loads(kube.kubectl("get", "servicemonitors,prometheusrules", "-o", "json").stdout)["items"] == []
    finally:  # the CRDs are cluster-wide: leave the cluster as this test found it
        for crd in MONITORING_KINDS:
            kube.run(kube.kubectl_bin, "delete", "crd", crd, "--ignore-not-found", check=False)
        for f in crds:
            kube.run(kube.kubectl_bin, "delete", "-f", str(f), "--ignore-not-found", check=False)
