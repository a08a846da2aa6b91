"""Helm charts: lint, render, Kubernetes-schema validation, golden renders, values-schema rejections,
and the properties the gateway's pods depend on (gRPC probes, locked-down security context,
credentials only from Secrets, no `replicas` under an HPA, environment the services accept).

helm comes from scripts/helm-tools (built once with `go install`, cached in ~/.cache/longtail/bin);
the tests skip only if it cannot be installed. Renders are compared with tests/charts/golden/;
after an intended change, regenerate them with

    UPDATE_GOLDEN=1 ~/.cache/longtail/venv/bin/python -m pytest tests/charts -q

and review the diff like code.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"
GOLDEN = Path(__file__).parent / "golden"
KUBE_VERSION = "1.30.0"
NAMESPACE = "longtail"
# Dependency build order: service charts before the umbrella that vendors them.
SERVICE_CHARTS = ["gateway"]
UMBRELLA = "longtail"
APP_CHARTS = [*SERVICE_CHARTS, UMBRELLA]
# Custom resources whose schemas kubernetes-validate does not ship: checked structurally instead.
CUSTOM_KINDS = {"ServiceMonitor"}
SECRET_ENV = {"S3_ACCESS_KEY", "S3_SECRET_KEY", "FLEET_TOKEN_SECRET"}

CASES = [(chart, path.stem) for chart in APP_CHARTS for path in sorted((CHARTS / chart / "ci").glob("*.yaml"))]
CASE_IDS = [f"{chart}-{values}" for chart, values in CASES]


class HelmError(AssertionError):
    pass


def _run(cmd: list[str], timeout: float = 120) -> str:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise HelmError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return proc.stdout


@pytest.fixture(scope="session")
def helm() -> str:
    """scripts/helm-tools prints the cached helm, building it the first time (~1.5-3 min)."""
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists() and not os.environ.get("GO"):
        pytest.skip("helm cannot be installed: no Go toolchain to build it with (scripts/helm-tools)")
    proc = subprocess.run([str(ROOT / "scripts" / "helm-tools")], capture_output=True, text=True, timeout=1500)
    if proc.returncode != 0:
        pytest.skip(f"helm cannot be installed (scripts/helm-tools exited {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def charts(helm: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of charts/ with every dependency built from Chart.lock (`helm dependency build`), so
    no test reads a stale vendored tgz and the work tree is left untouched. Fails when a Chart.lock
    is out of sync with its Chart.yaml."""
    dest = tmp_path_factory.mktemp("helm") / "charts"
    shutil.copytree(CHARTS, dest, ignore=shutil.ignore_patterns("*.tgz"))
    for name in APP_CHARTS:
        _run([helm, "dependency", "build", dest / name])
    return dest


class Renderer:
    def __init__(self, helm: str, charts: Path) -> None:
        self.helm = helm
        self.charts = charts

    @functools.cache
    def text(self, chart: str, values: str | None = None, extra: tuple[str, ...] = ()) -> str:
        cmd = [self.helm, "template", chart, self.charts / chart, "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
        if values:
            cmd += ["-f", self.charts / chart / "ci" / f"{values}.yaml"]
        return _run([*cmd, *extra])

    def docs(self, chart: str, values: str | None = None, extra: tuple[str, ...] = ()) -> list[dict]:
        return [d for d in yaml.safe_load_all(self.text(chart, values, extra)) if d]

    def fails(self, chart: str, *args: str, values: str | None = "defaults") -> str:
        try:
            self.text(chart, values, tuple(args))
        except HelmError as exc:
            return str(exc)
        raise AssertionError(f"helm template {chart} {' '.join(args)} succeeded but should have failed")


@pytest.fixture(scope="session")
def render(helm: str, charts: Path) -> Renderer:
    return Renderer(helm, charts)


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


# --- lint, validate, golden -------------------------------------------------------------------


def test_helm_tools_is_cached(helm: str) -> None:
    started = time.monotonic()
    out = subprocess.run([str(ROOT / "scripts" / "helm-tools")], capture_output=True, text=True, check=True).stdout.strip()
    assert out == helm and time.monotonic() - started < 5
    assert "v3.19.0" in _run([helm, "version", "--short"])


def test_lint_library(helm: str, charts: Path) -> None:
    _run([helm, "lint", "--strict", charts / "longtail-lib"])


@pytest.mark.parametrize(("chart", "values"), CASES, ids=CASE_IDS)
def test_lint(helm: str, charts: Path, chart: str, values: str) -> None:
    _run([helm, "lint", "--strict", "--kube-version", KUBE_VERSION, charts / chart, "-f", charts / chart / "ci" / f"{values}.yaml"])


def _check_service_monitor(sm: dict, docs: list[dict]) -> None:
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    selector = sm["spec"]["selector"]["matchLabels"]
    services = [d for d in docs if d["kind"] == "Service" and selector.items() <= d["metadata"]["labels"].items()]
    ports = {p["name"] for s in services for p in s["spec"]["ports"]}
    for endpoint in sm["spec"]["endpoints"]:
        assert endpoint["port"] in ports, f"ServiceMonitor {sm['metadata']['name']} scrapes port {endpoint['port']!r}, no selected Service has it"
        assert re.fullmatch(r"\d+(ms|s|m|h)", endpoint["interval"])


@pytest.mark.parametrize(("chart", "values"), CASES, ids=CASE_IDS)
def test_render_is_valid_kubernetes(render: Renderer, chart: str, values: str) -> None:
    docs = render.docs(chart, values)
    for doc in docs:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if doc["kind"] in CUSTOM_KINDS:
            _check_service_monitor(doc, docs)
            continue
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{chart} with ci/{values}.yaml: {name} is not valid Kubernetes {KUBE_VERSION}: {exc.message} at {list(exc.path)}") from None
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), f"duplicate objects: {names}"


@pytest.mark.parametrize(("chart", "values"), CASES, ids=CASE_IDS)
def test_golden_render(render: Renderer, chart: str, values: str) -> None:
    golden = GOLDEN / f"{chart}-{values}.yaml"
    actual = render.text(chart, values)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
        return
    assert golden.exists(), f"{golden.relative_to(ROOT)} is missing; create it with UPDATE_GOLDEN=1"
    expected = golden.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), str(golden.relative_to(ROOT)), "render"))
        raise AssertionError(f"render differs from the golden file (UPDATE_GOLDEN=1 to accept):\n{diff[:6000]}")


def test_no_stray_golden_files() -> None:
    expected = {f"{chart}-{values}.yaml" for chart, values in CASES}
    stray = sorted(p.name for p in GOLDEN.glob("*.yaml") if p.name not in expected)
    assert not stray, f"golden files without a ci values file: {stray}"


# --- values schema ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chart", "args", "expected"),
    [
        ("gateway", ["--set", "replicas=3"], ["additional properties 'replicas' not allowed"]),
        ("gateway", ["--set", "grpc.prot=50052"], ["/grpc", "'prot' not allowed"]),
        ("gateway", ["--set", "s3.existingSecret.accesKeyKey=x"], ["/s3/existingSecret", "'accesKeyKey'"]),
        ("gateway", ["--set-string", "grpc.port=fifty"], ["/grpc/port", "want integer"]),
        ("gateway", ["--set-string", "autoscaling.enabled=yes"], ["/autoscaling/enabled", "want boolean"]),
        ("gateway", ["--set", "kafka.bootstrapServers=http://kafka:9092"], ["/kafka/bootstrapServers", "does not match pattern"]),
        ("gateway", ["--set", "s3.endpoint=https://s3.amazonaws.com"], ["/s3/endpoint"]),
        ("gateway", ["--set", "workload.kind=DaemonSet"], ["/workload/kind"]),
        ("gateway", ["--set", "gateway.maxChunkBytes=10"], ["/gateway/maxChunkBytes"]),
        (UMBRELLA, ["--set", "gatway.enabled=true"], ["additional properties 'gatway' not allowed"]),
        (UMBRELLA, ["--set", "gateway.grpc.prot=1"], ["gateway", "/grpc", "'prot' not allowed"]),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_schema_rejects(render: Renderer, chart: str, args: list[str], expected: list[str]) -> None:
    error = render.fails(chart, *args)
    for text in expected:
        assert text in error, f"expected {text!r} in:\n{error}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "s3.endpoint=s3:9000"], "kafka.bootstrapServers is required"),
        (["--set", "kafka.bootstrapServers=kafka:9092"], "s3.endpoint is required"),
    ],
)
def test_required_values_are_named(render: Renderer, args: list[str], expected: str) -> None:
    assert expected in render.fails("gateway", *args, values=None)


def test_schema_accepts_enabled_and_global(render: Renderer) -> None:
    """A subchart receives `enabled` and `global` from its parent; additionalProperties:false must allow both."""
    render.text("gateway", "defaults", ("--set", "enabled=true", "--set", "global.image.tag=v9", "--set", "global.other=1"))


# --- the gateway's pods -----------------------------------------------------------------------


def test_gateway_deployment(render: Renderer) -> None:
    docs = render.docs("gateway", "defaults")
    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    c = container(docs)

    assert spec["replicas"] == 2
    selector = {"app.kubernetes.io/name": "gateway", "app.kubernetes.io/instance": "gateway"}
    assert spec["selector"]["matchLabels"] == selector
    assert one(docs, "Service")["spec"]["selector"] == selector
    assert one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    labels = spec["template"]["metadata"]["labels"]
    for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"):
        assert key in labels

    assert c["image"] == "longtail:0.1.0" and c["args"] == ["gateway"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"grpc": 50051, "metrics": 9464}

    # native gRPC probes: readiness/startup ask for the FleetGatewayService, liveness for the server
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"]["port"] == 50051, probe
        assert "httpGet" not in c[probe] and "tcpSocket" not in c[probe] and "exec" not in c[probe]
    assert c["readinessProbe"]["grpc"]["service"] == "longtail.fleet.v1.FleetGatewayService"
    assert "service" not in c["livenessProbe"]["grpc"]

    # locked down
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in pod["volumes"]
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]

    # configuration: non-secret values in the ConfigMap, credentials only as Secret references
    configmap = env_configmap(docs)
    assert c["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
    assert configmap["data"]["GRPC_HOST"] == "0.0.0.0"
    assert not SECRET_ENV & configmap["data"].keys()
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert refs == {
        "S3_ACCESS_KEY": {"name": "longtail-s3", "key": "access-key"},
        "S3_SECRET_KEY": {"name": "longtail-s3", "key": "secret-key"},
        "FLEET_TOKEN_SECRET": {"name": "longtail-fleet", "key": "token-secret"},
    }
    assert all("value" not in e for e in c["env"])
    assert not [d for d in docs if d["kind"] == "Secret"], "the chart must never create Secrets"
    # a config change rolls the pods
    assert re.fullmatch(r"[0-9a-f]{64}", spec["template"]["metadata"]["annotations"]["checksum/config"])


def test_autoscaling_omits_replicas(render: Renderer) -> None:
    docs = render.docs("gateway", "autoscaling")
    assert "replicas" not in one(docs, "Deployment")["spec"]
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600
    pdb = one(docs, "PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] == 2 and "maxUnavailable" not in pdb


def test_external_values(render: Renderer) -> None:
    docs = render.docs("gateway", "external")
    c = container(docs)
    data = env_configmap(docs)["data"]
    assert data["KAFKA_BOOTSTRAP_SERVERS"].count(",") == 2 and data["KAFKA_REPLICATION_FACTOR"] == "3"
    assert (data["S3_ENDPOINT"], data["S3_SECURE"], data["S3_REGION"]) == ("s3.eu-central-1.amazonaws.com:443", "true", "eu-central-1")
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert refs["S3_ACCESS_KEY"] == {"name": "longtail-s3-prod", "key": "AWS_ACCESS_KEY_ID"}
    assert refs["FLEET_TOKEN_SECRET"] == {"name": "longtail-fleet-prod", "key": "signing-key"}
    assert c["image"] == "registry.example.com/longtail/longtail:2026.11.1"
    assert one(docs, "Service")["spec"]["type"] == "LoadBalancer"
    spread = one(docs, "Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    assert spread["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": "gateway", "app.kubernetes.io/instance": "gateway"}


def test_umbrella(render: Renderer) -> None:
    docs = render.docs(UMBRELLA, "production")
    c = container(docs)
    assert one(docs, "Deployment")["metadata"]["name"] == "longtail-gateway"
    assert c["image"] == "registry.example.com/longtail/longtail:2026.11.1", "global.image applies to every service"
    assert "replicas" not in one(docs, "Deployment")["spec"]
    assert render.docs(UMBRELLA, "gateway-disabled") == []


@pytest.mark.parametrize("values", sorted(p.stem for p in (CHARTS / "gateway" / "ci").glob("*.yaml")))
def test_gateway_environment_is_accepted_by_the_service(render: Renderer, monkeypatch: pytest.MonkeyPatch, values: str) -> None:
    """The rendered environment loads through the gateway's own settings classes (types, host:port
    checks, every GATEWAY_* name a real field), with the Secret-provided variables filled in."""
    from gateway.settings import GatewaySettings
    from longtail import config
    from longtail.auth import FleetAuthSettings

    docs = render.docs("gateway", values)
    env = dict(env_configmap(docs)["data"])
    env.update({name: "x" * 40 for name in SECRET_ENV})
    for name in list(os.environ):
        if name.startswith(("GATEWAY_", "KAFKA_", "S3_", "GRPC_", "METRICS_", "FLEET_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    fields = {f"GATEWAY_{name.upper()}" for name in GatewaySettings.model_fields}
    unknown = {name for name in env if name.startswith("GATEWAY_")} - fields
    assert not unknown, f"the chart sets GATEWAY_* variables the gateway does not read: {unknown}"
    gateway = config.load(GatewaySettings)
    service = config.load(config.ServiceSettings)
    kafka = config.load(config.KafkaSettings)
    s3 = config.load(config.S3Settings)
    config.load(FleetAuthSettings)
    assert service.grpc_host == "0.0.0.0" and service.grpc_port == container(docs)["readinessProbe"]["grpc"]["port"]
    assert kafka.bootstrap_servers == env["KAFKA_BOOTSTRAP_SERVERS"] and s3.endpoint == env["S3_ENDPOINT"]
    assert gateway.max_chunk_bytes == int(env["GATEWAY_MAX_CHUNK_BYTES"])


# --- observability ----------------------------------------------------------------------------


def _defined_metrics() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "services").rglob("*.py"):
        names |= set(re.findall(r"""(?:Counter|Gauge|Histogram|Summary)\(\s*["'](longtail_[a-z0-9_]+)["']""", path.read_text()))
    return names


def test_observability(render: Renderer) -> None:
    docs = render.docs("gateway", "observability")
    sm = one(docs, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["endpoints"][0]["interval"] == "15s"
    dashboards = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert [d["metadata"]["name"] for d in dashboards] == ["gateway-dashboard-gateway"]
    assert dashboards[0]["metadata"]["namespace"] == "monitoring"
    assert dashboards[0]["metadata"]["annotations"] == {"grafana_folder": "longtail"}
    dashboard = json.loads(dashboards[0]["data"]["gateway.json"])
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for needle in (
        "longtail_gateway_connected_cars",
        "rate(longtail_gateway_frames_total",
        "longtail_gateway_rejects_total",
        "histogram_quantile(0.99, sum by (le) (rate(longtail_gateway_ack_latency_seconds_bucket",
        "longtail_gateway_upload_bytes_total",
    ):
        assert needle in exprs, needle
    # off by default
    default_docs = render.docs("gateway", "defaults")
    assert not [d for d in default_docs if d["kind"] == "ServiceMonitor" or "grafana_dashboard" in d["metadata"]["labels"]]


def test_dashboard_metrics_exist_in_the_code() -> None:
    defined = _defined_metrics()
    assert "longtail_gateway_frames_total" in defined
    for path in CHARTS.glob("*/dashboards/*.json"):
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["panels"]
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                for metric in re.findall(r"longtail_[a-z0-9_]+", target["expr"]):
                    base = re.sub(r"_(bucket|sum|count)$", "", metric)
                    assert base in defined, f"{path.name} panel {panel['title']!r} queries {metric}, which no service defines"


# --- the library, used by a service that does not exist yet --------------------------------


NEW_SERVICE_VALUES = """
replicaCount: 3
image: {repository: longtail, pullPolicy: IfNotPresent, tag: ""}
serviceAccount: {create: true, automount: false, name: ""}
service: {type: ClusterIP}
workload: {kind: StatefulSet}
persistence: {enabled: true, size: 5Gi, mountPath: /var/lib/longtail}
grpc: {port: 50061, healthService: longtail.triggers.v1.TriggerService}
metrics: {enabled: true, port: 9464, serviceMonitor: {enabled: true}}
kafka: {bootstrapServers: "kafka:9092", replicationFactor: 3}
triggerEvaluator: {partitions: 12, uploadBudgetPerHour: 1000.5}
autoscaling: {enabled: true, minReplicas: 1, maxReplicas: 12, targetCPUUtilizationPercentage: 70}
pdb: {enabled: true, maxUnavailable: 1}
resources: {requests: {cpu: 100m, memory: 128Mi}}
"""


@pytest.fixture(scope="session")
def new_service(helm: str, charts: Path) -> Path:
    """A chart made the documented way: Chart.yaml + values.yaml + the one-line template."""
    chart = charts / "trigger-evaluator"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: trigger-evaluator\nversion: 0.1.0\nappVersion: '0.1.0'\n"
        "dependencies:\n  - {name: longtail-lib, version: 0.1.0, repository: file://../longtail-lib}\n"
    )
    (chart / "values.yaml").write_text(NEW_SERVICE_VALUES)
    (chart / "templates" / "all.yaml").write_text('{{ include "longtail-lib.all" . }}\n')
    _run([helm, "dependency", "update", chart])
    return chart


def test_library_statefulset_for_a_new_service(render: Renderer, new_service: Path) -> None:
    docs = render.docs("trigger-evaluator")
    for doc in docs:
        if doc["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    sts = one(docs, "StatefulSet")
    assert "replicas" not in sts["spec"]
    assert sts["spec"]["serviceName"] == "trigger-evaluator-headless"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    c = container(docs, "StatefulSet")
    assert c["args"] == ["trigger-evaluator"]
    assert {"name": "data", "mountPath": "/var/lib/longtail"} in c["volumeMounts"]
    assert "env" not in c, "no S3 or fleet section, so no Secret references"
    data = env_configmap(docs, "StatefulSet")["data"]
    assert data["TRIGGER_EVALUATOR_PARTITIONS"] == "12" and data["TRIGGER_EVALUATOR_UPLOAD_BUDGET_PER_HOUR"] == "1000.5"
    assert "S3_ENDPOINT" not in data
    assert one(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert services["trigger-evaluator-headless"]["spec"]["clusterIP"] == "None"
    assert {p["name"] for p in services["trigger-evaluator-headless"]["spec"]["ports"]} == {"grpc"}, "a ServiceMonitor must not scrape pods twice"
    _check_service_monitor(one(docs, "ServiceMonitor"), docs)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "workload.kind=Deployment"], "persistence.enabled needs workload.kind: StatefulSet"),
        (["--set", "autoscaling.maxReplicas=0"], "autoscaling.maxReplicas (0) is below autoscaling.minReplicas (1)"),
        (["--set", "kafka.bootstrapServers="], "kafka.bootstrapServers is required"),
        (["--set", "triggerEvaluator.budget.perHour=1"], "triggerEvaluator.budget must be a single value"),
    ],
)
def test_library_fails_with_a_message(render: Renderer, new_service: Path, args: list[str], expected: str) -> None:
    assert expected in render.fails("trigger-evaluator", *args, values=None)
