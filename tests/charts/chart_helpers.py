"""What the chart tests share: paths and constants, running helm, the renderer (one `helm template`
per chart, values file and arguments in a session) and checks of rendered objects. The fixtures
(helm, kubectl, the built copy of charts/, render) are in conftest.py."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"
GOLDEN = Path(__file__).parent / "golden"
KUBE_VERSION = "1.30.0"
# Renders as on a cluster with the Prometheus Operator's CRDs (the charts create ServiceMonitors and
# PrometheusRules only where the API serves them; test_charts_common checks the other case).
MONITORING_API = ("--api-versions", "monitoring.coreos.com/v1/ServiceMonitor", "--api-versions", "monitoring.coreos.com/v1/PrometheusRule")
# ... and as on a cluster that serves ValidatingAdmissionPolicies (Kubernetes >= 1.30; helm's offline
# default API set does not list them): the single-replica charts' replicaLimit.
ADMISSION_API = ("--api-versions", "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy")
NAMESPACE = "longtail"
# Dependency build order: service charts before the umbrella that vendors them.
SERVICE_CHARTS = ["gateway", "trigger-evaluator", "map-vision", "triton", "label-store", "inference", "trainer"]
UMBRELLA = "longtail"
LIBRARY = "longtail-lib"
APP_CHARTS = [*SERVICE_CHARTS, UMBRELLA]
# Custom resources whose schemas kubernetes-validate does not ship: checked structurally instead.
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}  # Prometheus Operator CRDs: checked structurally
# Partition count of fleet.telemetry.v1 (services/longtail/topics.py): the evaluator's replica bound.
TELEMETRY_PARTITIONS = 6
SECRET_ENV = {"S3_ACCESS_KEY", "S3_SECRET_KEY", "FLEET_TOKEN_SECRET", "OPERATOR_TOKEN_SECRET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "DATABASE_URL"}

CASES = [(chart, path.stem) for chart in APP_CHARTS for path in sorted((CHARTS / chart / "ci").glob("*.yaml"))]
CASE_IDS = [f"{chart}-{values}" for chart, values in CASES]


def ci_values(chart: str) -> list[str]:
    """The names of a chart's ci/*.yaml values files."""
    return sorted(p.stem for p in (CHARTS / chart / "ci").glob("*.yaml"))


class HelmError(AssertionError):
    pass


def run(cmd: list[str | Path], timeout: float = 120) -> str:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise HelmError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return proc.stdout


def go_built_tool(name: str) -> str:
    """scripts/<name>-tools prints the cached binary, building it with Go the first time."""
    script = f"scripts/{name}-tools"
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists() and not os.environ.get("GO"):
        pytest.skip(f"{name} cannot be installed: no Go toolchain to build it with ({script})")
    proc = subprocess.run([str(ROOT / script)], capture_output=True, text=True, timeout=1500)
    if proc.returncode != 0:
        pytest.skip(f"{name} cannot be installed ({script} exited {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return proc.stdout.strip().splitlines()[-1]


class Renderer:
    def __init__(self, helm: str, charts: Path) -> None:
        self.helm = helm
        self.charts = charts

    @functools.cache  # noqa: B019 (one renderer for the whole session: nothing to leak)
    def text(self, chart: str, values: str | None = None, extra: tuple[str, ...] = ()) -> str:
        cmd = [self.helm, "template", chart, self.charts / chart, "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION, *MONITORING_API, *ADMISSION_API]
        if values:
            cmd += ["-f", self.charts / chart / "ci" / f"{values}.yaml"]
        return run([*cmd, *extra])

    def docs(self, chart: str, values: str | None = None, extra: tuple[str, ...] = ()) -> list[dict]:
        return [d for d in yaml.safe_load_all(self.text(chart, values, extra)) if d]

    def fails(self, chart: str, *args: str, values: str | None = "defaults") -> str:
        try:
            self.text(chart, values, tuple(args))
        except HelmError as exc:
            return str(exc)
        raise AssertionError(f"helm template {chart} {' '.join(args)} succeeded but should have failed")


def one(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def container(docs: list[dict], kind: str = "Deployment") -> dict:
    (c,) = one(docs, kind)["spec"]["template"]["spec"]["containers"]
    return c


def env_configmap(docs: list[dict], kind: str = "Deployment") -> dict:
    """The ConfigMap the workload loads its environment from (not the dashboard ones)."""
    (ref,) = container(docs, kind)["envFrom"]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == ref["configMapRef"]["name"]]
    return cm


def check_service_monitor(sm: dict, docs: list[dict]) -> None:
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    selector = sm["spec"]["selector"]["matchLabels"]
    services = [d for d in docs if d["kind"] == "Service" and selector.items() <= d["metadata"]["labels"].items()]
    ports = {p["name"] for s in services for p in s["spec"]["ports"]}
    for endpoint in sm["spec"]["endpoints"]:
        assert endpoint["port"] in ports, f"ServiceMonitor {sm['metadata']['name']} scrapes port {endpoint['port']!r}, no selected Service has it"
        assert re.fullmatch(r"\d+(ms|s|m|h)", endpoint["interval"])


def check_replica_limit(docs: list[dict], kind: str = "Deployment", most: int = 1) -> None:
    """The admission policy that makes the API server refuse more than `most` replicas of the
    workload, through the workload itself and its scale subresource (`kubectl scale`), bound to the
    release's namespace only. tests/k8s/test_charts_scaling.py checks that the API server enforces it."""
    workload = one(docs, kind)
    policy, binding = one(docs, "ValidatingAdmissionPolicy"), one(docs, "ValidatingAdmissionPolicyBinding")
    name = workload["metadata"]["name"]
    assert policy["metadata"]["name"] == binding["metadata"]["name"] == binding["spec"]["policyName"]
    assert NAMESPACE in policy["metadata"]["name"], "cluster-scoped: two releases in two namespaces must not collide"
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    plural = f"{kind.lower()}s"
    assert rule == {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": [plural, f"{plural}/scale"], "resourceNames": [name]}
    (validation,) = policy["spec"]["validations"]
    assert validation["expression"].endswith(f"object.spec.replicas <= {most}") and policy["spec"]["failurePolicy"] == "Fail"
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"] == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}}


def check_prometheus_rule(doc: dict) -> None:
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    groups = doc["spec"]["groups"]
    assert groups and all(g["name"] and g["rules"] for g in groups)
    for rule in (r for g in groups for r in g["rules"]):
        assert rule["expr"] and (rule.get("alert") or rule.get("record")), rule
        assert not rule.get("alert") or rule["annotations"]["summary"], rule


def assert_locked_down(docs: list[dict], kind: str, uid: int) -> None:
    pod = one(docs, kind)["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert not [d for d in docs if d["kind"] == "Secret"], "the chart must never create Secrets"
    for e in c.get("env", []):
        if e["name"] in SECRET_ENV:
            assert set(e) == {"name", "valueFrom"} and "secretKeyRef" in e["valueFrom"], f"{e['name']} must come from a Secret"


def load_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], prefixes: tuple[str, ...]) -> None:
    for name in list(os.environ):
        if name.startswith(prefixes):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def defined_metrics() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "services").rglob("*.py"):
        names |= set(re.findall(r"""(?:Counter|Gauge|Histogram|Summary)\(\s*["'](longtail_[a-z0-9_]+)["']""", path.read_text()))
    return names
