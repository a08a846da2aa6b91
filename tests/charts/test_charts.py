"""Helm charts: lint, render, Kubernetes-schema validation, golden renders, values-schema rejections,
and the properties the services' pods depend on (gRPC probes, locked-down security context,
credentials only from Secrets, no `replicas` under an HPA, environment the services accept): the
gateway, the trigger-evaluator (a StatefulSet bounded by its partition count), map-vision (exactly
one writer), Triton (the stock image on the S3 model repository, explicit model control), the
label store (PostgreSQL from a Secret; SQLite only as one replica on a volume), inference (the
Triton address) and the trainer (exactly one replica).

helm comes from scripts/helm-tools (built once with `go install`, cached in ~/.cache/longtail/bin),
kubectl (for the Secrets block of docs/deploy.md) from scripts/kubectl-tools (built once from
scripts/kubectl/, cached there too); the tests skip only if they cannot be installed. Renders are
compared with tests/charts/golden/; after an intended change, regenerate them with

    UPDATE_GOLDEN=1 ~/.cache/longtail/venv/bin/python -m pytest tests/charts -q

and review the diff like code.
"""

from __future__ import annotations

import base64
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

from longtail import config
from longtail.registry import GATEWAY, INFERENCE, LABEL_STORE, MAP_VISION, TRAINER, TRIGGER_EVALUATOR

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"
GOLDEN = Path(__file__).parent / "golden"
KUBE_VERSION = "1.30.0"
NAMESPACE = "longtail"
# Dependency build order: service charts before the umbrella that vendors them.
SERVICE_CHARTS = ["gateway", "trigger-evaluator", "map-vision", "triton", "label-store", "inference", "trainer"]
UMBRELLA = "longtail"
APP_CHARTS = [*SERVICE_CHARTS, UMBRELLA]
# Custom resources whose schemas kubernetes-validate does not ship: checked structurally instead.
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}  # Prometheus Operator CRDs: checked structurally
SECRET_ENV = {"S3_ACCESS_KEY", "S3_SECRET_KEY", "FLEET_TOKEN_SECRET", "OPERATOR_TOKEN_SECRET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "DATABASE_URL"}
# Partition count of fleet.telemetry.v1 (services/longtail/topics.py): the evaluator's replica bound.
TELEMETRY_PARTITIONS = 6
# Triton's own metrics a dashboard may query (docs/user_guide/metrics.md of triton-inference-server/server).
TRITON_METRICS = {
    "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count", "nv_inference_exec_count",
    "nv_inference_request_duration_us", "nv_inference_queue_duration_us", "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us", "nv_inference_compute_output_duration_us", "nv_inference_pending_request_count",
    "nv_gpu_utilization", "nv_gpu_memory_total_bytes", "nv_gpu_memory_used_bytes", "nv_gpu_power_usage", "nv_gpu_power_limit",
    "nv_energy_consumption", "nv_cpu_utilization", "nv_cpu_memory_total_bytes", "nv_cpu_memory_used_bytes",
}

CASES = [(chart, path.stem) for chart in APP_CHARTS for path in sorted((CHARTS / chart / "ci").glob("*.yaml"))]
CASE_IDS = [f"{chart}-{values}" for chart, values in CASES]


class HelmError(AssertionError):
    pass


def _run(cmd: list[str], timeout: float = 120) -> str:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise HelmError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return proc.stdout


def _go_built_tool(name: str) -> str:
    """scripts/<name>-tools prints the cached binary, building it with Go the first time."""
    script = f"scripts/{name}-tools"
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists() and not os.environ.get("GO"):
        pytest.skip(f"{name} cannot be installed: no Go toolchain to build it with ({script})")
    proc = subprocess.run([str(ROOT / script)], capture_output=True, text=True, timeout=1500)
    if proc.returncode != 0:
        pytest.skip(f"{name} cannot be installed ({script} exited {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def helm() -> str:
    return _go_built_tool("helm")  # ~1.5-3 min the first time


@pytest.fixture(scope="session")
def kubectl() -> str:
    return _go_built_tool("kubectl")  # ~1-2 min the first time


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

    @functools.cache  # noqa: B019 (one renderer for the whole session: nothing to leak)
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


def test_kubectl_tools_is_cached(kubectl: str) -> None:
    started = time.monotonic()
    out = subprocess.run([str(ROOT / "scripts" / "kubectl-tools")], capture_output=True, text=True, check=True).stdout.strip()
    assert out == kubectl and time.monotonic() - started < 5
    version = json.loads(_run([kubectl, "version", "--client", "-o", "json"]))["clientVersion"]
    assert version["gitVersion"] == "v1.34.2"


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
        if doc["kind"] == "ServiceMonitor":
            _check_service_monitor(doc, docs)
            continue
        if doc["kind"] == "PrometheusRule":
            _check_prometheus_rule(doc)
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
        # trigger-evaluator: a StatefulSet, bounded by the 6 partitions of fleet.telemetry.v1
        ("trigger-evaluator", ["--set", "autoscaling.maxReplicas=7"], ["/autoscaling/maxReplicas", "maximum"]),
        ("trigger-evaluator", ["--set", "replicaCount=7"], ["/replicaCount", "maximum"]),
        ("trigger-evaluator", ["--set", "workload.kind=Deployment"], ["/workload/kind"]),
        ("trigger-evaluator", ["--set", "triggerEvaluator.fleetWorker=false"], ["/triggerEvaluator/fleetWorker"]),
        ("trigger-evaluator", ["--set", "triggerEvaluator.partitions=12"], ["/triggerEvaluator", "'partitions' not allowed"]),
        ("trigger-evaluator", ["--set", "fleet.tokenSecret.name=x"], ["additional properties 'fleet' not allowed"]),
        ("trigger-evaluator", ["--set", "operator.tokenSecret.nam=x"], ["/operator/tokenSecret", "'nam' not allowed"]),
        ("trigger-evaluator", ["--set", "persistence.sise=1Gi"], ["/persistence", "'sise' not allowed"]),
        # map-vision: one writer of the map
        ("map-vision", ["--set", "replicaCount=2"], ["/replicaCount", "maximum"]),
        ("map-vision", ["--set", "autoscaling.enabled=true"], ["/autoscaling/enabled"]),
        ("map-vision", ["--set", "autoscaling.maxReplicas=2"], ["/autoscaling", "'maxReplicas' not allowed"]),
        ("map-vision", ["--set", "workload.updateStrategy.type=RollingUpdate"], ["/workload/updateStrategy/type"]),
        ("map-vision", ["--set", "pdb.minAvailable=1"], ["/pdb", "'minAvailable' not allowed"]),
        ("map-vision", ["--set", "mapVision.stalePases=3"], ["/mapVision", "'stalePases' not allowed"]),
        ("map-vision", ["--set-string", "mapVision.stalePasses=many"], ["/mapVision/stalePasses", "want integer"]),
        ("map-vision", ["--set", "s3.endpoint=s3:9000"], ["additional properties 's3' not allowed"]),
        # triton
        ("triton", ["--set", "image.tag="], ["/image/tag"]),
        ("triton", ["--set", "triton.modelControlMode=poll"], ["/triton", "'modelControlMode' not allowed"]),
        ("triton", ["--set", "s3.endpoint=https://s3.amazonaws.com"], ["/s3/endpoint"]),
        ("triton", ["--set", "kafka.bootstrapServers=kafka:9092"], ["additional properties 'kafka' not allowed"]),
        ("triton", ["--set", "grpc.port=0"], ["/grpc/port", "minimum"]),
        # label-store: PostgreSQL from a Secret; SQLite only as one replica
        ("label-store", ["--set", "database.type=mysql"], ["/database/type"]),
        ("label-store", ["--set", "database.url=postgresql://u:p@db:5432/l"], ["/database", "'url' not allowed"]),
        ("label-store", ["--set", "database.existingSecret.name="], ["/database/existingSecret/name"]),
        ("label-store", ["--set", "database.type=sqlite"], ["/replicaCount", "maximum"]),
        ("label-store", ["--set", "database.type=sqlite", "--set", "replicaCount=1", "--set", "labelStore.dataDir=/data"], ["/workload"]),
        ("label-store", ["--set", "labelStore.leaseSecs=5"], ["/labelStore", "'leaseSecs' not allowed"]),
        ("label-store", ["--set-string", "labelStore.dbPoolSize=many"], ["/labelStore/dbPoolSize", "want integer"]),
        ("label-store", ["--set", "workload.kind=StatefulSet"], ["/workload/kind"]),
        ("label-store", ["--set", "fleet.tokenSecret.name=x"], ["additional properties 'fleet' not allowed"]),
        # inference
        ("inference", ["--set", "triton.grpcAddr=http://triton:8001"], ["/triton/grpcAddr", "does not match pattern"]),
        ("inference", ["--set", "triton.httpAddr=triton:8000"], ["/triton", "'httpAddr' not allowed"]),
        ("inference", ["--set", "inference.maxBatch=0"], ["/inference/maxBatch", "minimum"]),
        ("inference", ["--set", "inference.modelNmae=x"], ["/inference", "'modelNmae' not allowed"]),
        ("inference", ["--set", "operator.tokenSecret.name=x"], ["additional properties 'operator' not allowed"]),
        # trainer: one replica
        ("trainer", ["--set", "replicaCount=2"], ["/replicaCount", "maximum"]),
        ("trainer", ["--set", "autoscaling.enabled=true"], ["/autoscaling/enabled"]),
        ("trainer", ["--set", "autoscaling.maxReplicas=2"], ["/autoscaling", "'maxReplicas' not allowed"]),
        ("trainer", ["--set", "workload.updateStrategy.type=RollingUpdate"], ["/workload/updateStrategy/type"]),
        ("trainer", ["--set", "pdb.minAvailable=1"], ["/pdb", "'minAvailable' not allowed"]),
        ("trainer", ["--set", "labelStore.addr=label-store"], ["/labelStore/addr", "does not match pattern"]),
        ("trainer", ["--set", "trainer.threads=0"], ["/trainer/threads", "minimum"]),
        ("trainer", ["--set-json", "trainer.detectorMinAuc=1.5"], ["/trainer/detectorMinAuc", "maximum"]),
        ("trainer", ["--set", "trainer.gpus=1"], ["/trainer", "'gpus' not allowed"]),
        (UMBRELLA, ["--set", "trainer.replicaCount=2"], ["trainer", "/replicaCount"]),
        (UMBRELLA, ["--set", "label-store.database.type=mysql"], ["label-store", "/database/type"]),
        (UMBRELLA, ["--set", "gatway.enabled=true"], ["additional properties 'gatway' not allowed"]),
        (UMBRELLA, ["--set", "gateway.grpc.prot=1"], ["gateway", "/grpc", "'prot' not allowed"]),
        (UMBRELLA, ["--set", "trigger-evaluator.autoscaling.maxReplicas=7"], ["trigger-evaluator", "/autoscaling/maxReplicas"]),
        (UMBRELLA, ["--set", "map-vision.replicaCount=2"], ["map-vision", "/replicaCount"]),
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


@pytest.mark.parametrize(
    ("chart", "args", "expected"),
    [
        ("trigger-evaluator", [], "kafka.bootstrapServers is required"),
        ("trigger-evaluator", ["--set", "kafka.bootstrapServers=kafka:9092", "--set", "s3.enabled=true"], "s3.endpoint is required"),
        ("map-vision", [], "kafka.bootstrapServers is required"),
        ("triton", [], "s3.endpoint is required"),
        ("label-store", [], "kafka.bootstrapServers is required"),
        ("label-store", ["--set", "kafka.bootstrapServers=kafka:9092"], "s3.endpoint is required"),
        ("inference", ["--set", "kafka.bootstrapServers=kafka:9092", "--set", "s3.endpoint=s3:9000"], "triton.grpcAddr is required"),
        ("trainer", ["--set", "kafka.bootstrapServers=kafka:9092", "--set", "s3.endpoint=s3:9000"], "labelStore.addr is required"),
        ("triton", ["--set", "s3.endpoint=s3:9000", "--set", "triton.extraArgs={--model-control-mode=poll}"], "triton.extraArgs must not set --model-control-mode=poll"),
    ],
)
def test_required_values_of_the_other_charts(render: Renderer, chart: str, args: list[str], expected: str) -> None:
    assert expected in render.fails(chart, *args, values=None)


@pytest.mark.parametrize("chart", SERVICE_CHARTS)
def test_schema_accepts_enabled_and_global(render: Renderer, chart: str) -> None:
    """A subchart receives `enabled` and `global` from its parent; additionalProperties:false must allow both."""
    render.text(chart, "defaults", ("--set", "enabled=true", "--set", "global.image.tag=v9", "--set", "global.other=1"))


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
    assert c["readinessProbe"]["grpc"]["service"] == GATEWAY.grpc
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


def _workloads(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}


def test_umbrella(render: Renderer) -> None:
    docs = render.docs(UMBRELLA, "production")
    workloads = _workloads(docs)
    assert {name: w["kind"] for name, w in workloads.items()} == {
        "longtail-gateway": "Deployment",
        "longtail-trigger-evaluator": "StatefulSet",
        "longtail-map-vision": "Deployment",
        "longtail-triton": "Deployment",
        "longtail-label-store": "Deployment",
        "longtail-inference": "Deployment",
        "longtail-trainer": "Deployment",
    }
    for name in ("longtail-gateway", "longtail-trigger-evaluator", "longtail-map-vision", "longtail-label-store", "longtail-inference", "longtail-trainer"):
        (c,) = workloads[name]["spec"]["template"]["spec"]["containers"]
        assert c["image"] == "registry.example.com/longtail/longtail:2026.11.1", f"global.image applies to {name}"
    (triton,) = workloads["longtail-triton"]["spec"]["template"]["spec"]["containers"]
    assert triton["image"] == "nvcr.io/nvidia/tritonserver:25.06-pyt-python-py3", "global.image is the longtail image, not Triton's"
    assert "replicas" not in workloads["longtail-gateway"]["spec"]
    assert "replicas" not in workloads["longtail-trigger-evaluator"]["spec"]
    assert workloads["longtail-map-vision"]["spec"]["replicas"] == 1
    hpas = {d["spec"]["scaleTargetRef"]["name"]: d["spec"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == {"longtail-gateway", "longtail-trigger-evaluator", "longtail-label-store", "longtail-inference"}
    assert workloads["longtail-trainer"]["spec"]["replicas"] == 1 and workloads["longtail-trainer"]["spec"]["strategy"] == {"type": "Recreate"}
    configs = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap" and "grafana_dashboard" not in d["metadata"]["labels"]}
    assert configs["longtail-inference"]["TRITON_GRPC_ADDR"] == "longtail-triton:8001"
    assert configs["longtail-trainer"]["LABEL_STORE_ADDR"] == "longtail-label-store:50051"
    assert hpas["longtail-trigger-evaluator"]["maxReplicas"] <= TELEMETRY_PARTITIONS
    # the shared S3 block (YAML merge key) reaches the evaluator, with its own `enabled`
    evaluator_env = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "longtail-trigger-evaluator"][0]["data"]
    assert evaluator_env["S3_ENDPOINT"] == "s3.eu-central-1.amazonaws.com:443"

    disabled = _workloads(render.docs(UMBRELLA, "gateway-disabled"))
    assert set(disabled) == {"longtail-trigger-evaluator", "longtail-map-vision", "longtail-triton", "longtail-label-store", "longtail-inference", "longtail-trainer"}
    assert render.docs(UMBRELLA, "none") == []


DEPLOY_DOC = ROOT / "docs" / "deploy.md"
SECRETS_SECTION = "## 2. Create the namespace and the Secrets"


def _docs_bash_block(heading: str) -> str:
    """The first ```bash block of a `## ` section of docs/deploy.md."""
    text = DEPLOY_DOC.read_text()
    assert heading in text, f"docs/deploy.md has no section {heading!r}"
    section = re.split(r"^## ", text.split(heading, 1)[1], flags=re.M)[0]
    match = re.search(r"^```bash\n(.*?)^```", section, re.S | re.M)
    assert match, f"docs/deploy.md section {heading!r} has no ```bash block"
    return match.group(1)


def _run_docs_block(kubectl: str, block: str, workdir: Path) -> list[dict]:
    """Runs a docs block with `kubectl` a shell function that appends --dry-run=client -o yaml to
    every call (no cluster: no kubeconfig, HOME in the temp dir) and returns the objects it printed."""
    script = workdir / "block.sh"
    script.write_text(
        "set -euo pipefail\n"
        'kubectl() { "$LONGTAIL_KUBECTL" "$@" --dry-run=client -o yaml; echo ---; }\n'
        + block
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "KUBECONFIG": str(workdir / "no-kubeconfig"),
        "LONGTAIL_KUBECTL": kubectl,
        "S3_ACCESS_KEY": "docs-access-key",
        "S3_SECRET_KEY": "docs-secret-key",
    }
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120, cwd=workdir, env=env)
    assert proc.returncode == 0, f"the docs' block failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}\n--- block ---\n{block}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def _pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    specs = []
    for d in docs:
        spec = d.get("spec") or {}
        if d["kind"] == "Pod":
            specs.append((f"Pod/{d['metadata']['name']}", spec))
        elif d["kind"] == "CronJob":
            specs.append((f"CronJob/{d['metadata']['name']}", spec["jobTemplate"]["spec"]["template"]["spec"]))
        elif "template" in spec and "spec" in spec["template"]:
            specs.append((f"{d['kind']}/{d['metadata']['name']}", spec["template"]["spec"]))
    return specs


def _external_references(docs: list[dict]) -> tuple[set[tuple[str, str | None, str]], set[tuple[str, str | None, str]]]:
    """(name, key or None for the whole object, where) of every Secret and of every ConfigMap the
    pods reference that the render does not contain. A volume mounted whole needs the keys the
    container's environment points at under its mount path (TRAINER_TASKS_FILE=<mount>/tasks.yaml)."""
    rendered_configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    secrets: set[tuple[str, str | None, str]] = set()
    configmaps: set[tuple[str, str | None, str]] = set()
    for where, pod in _pod_specs(docs):
        mounts: dict[str, list[tuple[str, dict[str, str]]]] = {}  # volume -> [(mountPath, env of the container)]
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            env_values = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
            for source in c.get("envFrom", []):
                if "secretRef" in source:
                    secrets.add((source["secretRef"]["name"], None, f"{where} envFrom"))
                if "configMapRef" in source:
                    name = source["configMapRef"]["name"]
                    if name in rendered_configmaps:
                        env_values.update(rendered_configmaps[name])
                    else:
                        configmaps.add((name, None, f"{where} envFrom"))
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    secrets.add((ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"], f"{where} env {e['name']}"))
                if "configMapKeyRef" in ref and ref["configMapKeyRef"]["name"] not in rendered_configmaps:
                    configmaps.add((ref["configMapKeyRef"]["name"], ref["configMapKeyRef"]["key"], f"{where} env {e['name']}"))
            for mount in c.get("volumeMounts", []):
                mounts.setdefault(mount["name"], []).append((mount["mountPath"], env_values))
        for volume in pod.get("volumes", []):
            for src in [volume, *volume.get("projected", {}).get("sources", [])]:
                for kind, name_field, found in (("secret", "secretName", secrets), ("configMap", "name", configmaps)):
                    if kind not in src or (kind == "configMap" and src[kind]["name"] in rendered_configmaps):
                        continue
                    name, label = src[kind][name_field], f"{where} volume {volume['name']}"
                    if src[kind].get("items"):
                        found.update((name, item["key"], label) for item in src[kind]["items"])
                        continue
                    keys = set()
                    for mount_path, env_values in mounts.get(volume["name"], []):
                        prefix = mount_path.rstrip("/") + "/"
                        keys |= {v[len(prefix):].split("/", 1)[0] for v in env_values.values() if isinstance(v, str) and v.startswith(prefix)}
                    found.update((name, key, label) for key in keys or {None})
    return secrets, configmaps


def test_docs_create_the_secrets_and_configmaps_the_charts_reference(kubectl: str, render: Renderer, tmp_path: Path) -> None:
    """docs/deploy.md section 2, run with a kubectl that only prints (--dry-run=client -o yaml),
    creates every Secret (and key) the pods of the umbrella with its default values reference, and
    every ConfigMap they reference that the charts do not render (the trainer's tasks)."""
    if shutil.which("openssl") is None:
        pytest.skip("the docs' block generates keys with openssl, which is not installed")
    shutil.copy(ROOT / "tasks.yaml", tmp_path / "tasks.yaml")
    created = _run_docs_block(kubectl, _docs_bash_block(SECRETS_SECTION), tmp_path)
    assert [d["metadata"]["name"] for d in created if d["kind"] == "Namespace"] == [NAMESPACE]
    objects = {(d["kind"], d["metadata"]["name"]): d for d in created if d["kind"] in ("Secret", "ConfigMap")}
    for (kind, name), d in objects.items():
        assert d["metadata"].get("namespace") == NAMESPACE, f"the docs create {kind} {name} outside the namespace {NAMESPACE}"
    doc_keys = {(kind, name): set(d.get("data", {})) | set(d.get("stringData", {})) | set(d.get("binaryData", {})) for (kind, name), d in objects.items()}
    # a sanity check of the dry-run output itself: values are the ones the block passed
    assert objects["Secret", "longtail-s3"]["data"]["access-key"] == base64.b64encode(b"docs-access-key").decode()

    secrets, configmaps = _external_references(render.docs(UMBRELLA, "defaults"))
    assert {name for name, _, _ in secrets} >= {"longtail-s3", "longtail-fleet", "longtail-operator", "longtail-label-store-db"}
    assert {name for name, _, _ in configmaps} == {"longtail-trainer-tasks"}, "the only ConfigMap the charts expect to exist is the trainer's tasks"
    problems = []
    for kind, refs in (("Secret", secrets), ("ConfigMap", configmaps)):
        for name, key, where in sorted(refs, key=lambda r: (r[0], r[1] or "", r[2])):
            if (kind, name) not in doc_keys:
                problems.append(f"{where} references {kind} {name}, which docs/deploy.md does not create")
            elif key is not None and key not in doc_keys[kind, name]:
                problems.append(f"{where} references key {key!r} of {kind} {name}; docs/deploy.md creates it with {sorted(doc_keys[kind, name])}")
    assert not problems, "docs/deploy.md section 2 and the charts disagree:\n" + "\n".join(problems)
    # and the docs create nothing the charts do not use
    referenced = {("Secret", n) for n, _, _ in secrets} | {("ConfigMap", n) for n, _, _ in configmaps}
    assert set(doc_keys) <= referenced, f"docs/deploy.md creates objects no chart references: {sorted(set(doc_keys) - referenced)}"
    assert doc_keys["ConfigMap", "longtail-trainer-tasks"] == {"tasks.yaml"}
    assert objects["ConfigMap", "longtail-trainer-tasks"]["data"]["tasks.yaml"] == (ROOT / "tasks.yaml").read_text()


@pytest.mark.parametrize("values", sorted(p.stem for p in (CHARTS / "gateway" / "ci").glob("*.yaml")))
def test_gateway_environment_is_accepted_by_the_service(render: Renderer, monkeypatch: pytest.MonkeyPatch, values: str) -> None:
    """The rendered environment loads through the gateway's own settings classes (types, host:port
    checks, every GATEWAY_* name a real field), with the Secret-provided variables filled in."""
    from longtail.auth import FleetAuthSettings

    from gateway.settings import GatewaySettings

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


# --- shared pod properties of the new charts -----------------------------------------------------


def _assert_locked_down(docs: list[dict], kind: str, uid: int) -> None:
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


def _load_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], prefixes: tuple[str, ...]) -> None:
    for name in list(os.environ):
        if name.startswith(prefixes):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


# --- the trigger-evaluator ----------------------------------------------------------------------


def test_trigger_evaluator_statefulset(render: Renderer) -> None:
    docs = render.docs("trigger-evaluator", "defaults")
    sts = one(docs, "StatefulSet")
    assert not [d for d in docs if d["kind"] == "Deployment"]
    spec = sts["spec"]
    assert spec["replicas"] == 2 and spec["serviceName"] == "trigger-evaluator-headless"
    assert spec["podManagementPolicy"] == "Parallel"
    assert "volumeClaimTemplates" not in spec, "the tables are in memory, rebuilt from changelog topics: no volume by default"
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert services["trigger-evaluator-headless"]["spec"]["clusterIP"] == "None"
    c = container(docs, "StatefulSet")
    assert c["args"] == ["trigger-evaluator"] and c["image"] == "longtail:0.1.0"
    assert c["readinessProbe"]["grpc"] == {"port": 50051, "service": TRIGGER_EVALUATOR.grpc}
    assert c["startupProbe"]["grpc"]["service"] == TRIGGER_EVALUATOR.grpc
    assert c["livenessProbe"]["grpc"] == {"port": 50051}
    _assert_locked_down(docs, "StatefulSet", 10001)
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert refs == {"OPERATOR_TOKEN_SECRET": {"name": "longtail-operator", "key": "token-secret"}}, "S3 is off by default"
    data = env_configmap(docs, "StatefulSet")["data"]
    assert not SECRET_ENV & data.keys() and not [k for k in data if k.startswith("S3_")]
    assert data["TRIGGER_EVALUATOR_FLEET_WORKER"] == "1"
    # the fleet worker writes nothing to disk (no Faust data directory any more): no APP_* settings, only /tmp mounted
    assert not [k for k in data if k.startswith("APP_")]
    assert [m["mountPath"] for m in c["volumeMounts"]] == ["/tmp"]
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_trigger_evaluator_autoscaling_is_bounded_by_partitions(render: Renderer) -> None:
    docs = render.docs("trigger-evaluator", "autoscaling")
    assert "replicas" not in one(docs, "StatefulSet")["spec"]
    hpa = one(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "trigger-evaluator"}
    assert hpa["maxReplicas"] <= TELEMETRY_PARTITIONS
    # the default scale-down is slow: every step is a consumer-group rebalance (tables rebuilt from changelogs)
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
    assert TELEMETRY_PARTITIONS == _telemetry_partitions(), "topics.py changed: update the schema bound and TELEMETRY_PARTITIONS"
    schema = json.loads((CHARTS / "trigger-evaluator" / "values.schema.json").read_text())["properties"]
    assert schema["autoscaling"]["properties"]["maxReplicas"]["maximum"] == TELEMETRY_PARTITIONS
    assert schema["replicaCount"]["maximum"] == TELEMETRY_PARTITIONS


def _telemetry_partitions() -> int:
    from longtail import topics

    return topics.TELEMETRY.partitions


def test_trigger_evaluator_external(render: Renderer) -> None:
    docs = render.docs("trigger-evaluator", "external")
    sts = one(docs, "StatefulSet")
    assert sts["spec"]["replicas"] == 3 and "volumeClaimTemplates" not in sts["spec"], "nothing on disk, even in production"
    c = container(docs, "StatefulSet")
    assert c["image"] == "registry.example.com/longtail/longtail:2026.11.1"
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert refs == {
        "S3_ACCESS_KEY": {"name": "longtail-s3-prod", "key": "AWS_ACCESS_KEY_ID"},
        "S3_SECRET_KEY": {"name": "longtail-s3-prod", "key": "AWS_SECRET_ACCESS_KEY"},
        "OPERATOR_TOKEN_SECRET": {"name": "longtail-operator-prod", "key": "signing-key"},
    }
    data = env_configmap(docs, "StatefulSet")["data"]
    assert data["S3_ENDPOINT"] == "s3.eu-central-1.amazonaws.com:443" and data["S3_SECURE"] == "true"
    assert data["KAFKA_REPLICATION_FACTOR"] == "3" and data["TZ"] == "UTC" and not [k for k in data if k.startswith("APP_")]


@pytest.mark.parametrize("values", sorted(p.stem for p in (CHARTS / "trigger-evaluator" / "ci").glob("*.yaml")))
def test_trigger_evaluator_environment_is_accepted_by_the_service(render: Renderer, monkeypatch: pytest.MonkeyPatch, values: str) -> None:
    """The rendered environment loads through the settings classes the evaluator's serve() loads
    (services/trigger_evaluator/__main__.py): ServiceSettings, KafkaSettings, OperatorAuthSettings
    and, when the chart sets S3, S3Settings; every TRIGGER_EVALUATOR_* name is one the service reads."""
    from longtail.auth import OperatorAuthSettings

    from trigger_evaluator.settings import TriggerEvaluatorSettings

    docs = render.docs("trigger-evaluator", values)
    c = container(docs, "StatefulSet")
    env = dict(env_configmap(docs, "StatefulSet")["data"])
    env.update({e["name"]: "x" * 40 for e in c["env"] if e["name"] in SECRET_ENV})
    _load_env(monkeypatch, env, ("TRIGGER_EVALUATOR_", "KAFKA_", "S3_", "GRPC_", "METRICS_", "OPERATOR_"))

    known = set(config.variables(TriggerEvaluatorSettings).values())
    assert "TRIGGER_EVALUATOR_FLEET_WORKER" in known
    unknown = {name for name in env if name.startswith("TRIGGER_EVALUATOR_")} - known
    assert not unknown, f"the chart sets TRIGGER_EVALUATOR_* variables the evaluator does not read: {unknown}"
    evaluator = config.load(TriggerEvaluatorSettings)
    assert evaluator.fleet_worker is (env["TRIGGER_EVALUATOR_FLEET_WORKER"] == "1")
    service = config.load(config.ServiceSettings)
    kafka = config.load(config.KafkaSettings)
    config.load(OperatorAuthSettings)
    assert service.grpc_host == "0.0.0.0" and service.grpc_port == c["readinessProbe"]["grpc"]["port"]
    assert kafka.bootstrap_servers == env["KAFKA_BOOTSTRAP_SERVERS"]
    if "S3_ENDPOINT" in env:
        assert config.load(config.S3Settings).endpoint == env["S3_ENDPOINT"]
    else:
        with pytest.raises(config.ConfigError):  # the service then runs without archived-segment backtests
            config.load(config.S3Settings)


# --- map-vision ---------------------------------------------------------------------------------


def test_map_vision_is_one_writer(render: Renderer) -> None:
    docs = render.docs("map-vision", "defaults")
    deployment = one(docs, "Deployment")["spec"]
    assert deployment["replicas"] == 1
    assert deployment["strategy"] == {"type": "Recreate"}, "a rolling update would run two writers of the map"
    assert not [d for d in docs if d["kind"] in ("HorizontalPodAutoscaler", "StatefulSet")]
    pdb = one(docs, "PodDisruptionBudget")["spec"]
    assert pdb == {**pdb, "maxUnavailable": 1} and "minAvailable" not in pdb, "a single pod must stay evictable"
    c = container(docs)
    assert c["args"] == ["map-vision"]
    assert c["readinessProbe"]["grpc"] == {"port": 50051, "service": MAP_VISION.grpc}
    assert c["livenessProbe"]["grpc"] == {"port": 50051}, "liveness asks for the server, which turns NOT_SERVING when the consumer stalls"
    _assert_locked_down(docs, "Deployment", 10001)
    (operator,) = c["env"]
    assert operator == {"name": "OPERATOR_TOKEN_SECRET", "valueFrom": {"secretKeyRef": {"name": "longtail-operator", "key": "token-secret", "optional": True}}}
    data = env_configmap(docs)["data"]
    assert not [k for k in data if k.startswith(("S3_", "FLEET_"))]


def test_map_vision_seed_file_from_a_configmap(render: Renderer) -> None:
    docs = render.docs("map-vision", "seeded")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    c = container(docs)
    data = env_configmap(docs)["data"]
    seed = data["MAP_VISION_SEED_FILE"]
    (mount,) = [m for m in c["volumeMounts"] if seed.startswith(m["mountPath"] + "/")]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == "map-vision-seed"
    assert "optional" not in c["env"][0]["valueFrom"]["secretKeyRef"]
    assert (data["MAP_VISION_STALE_PASSES"], data["MAP_VISION_PUBLISH_INTERVAL_S"]) == ("3", "2.5")


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def test_map_vision_schema_covers_every_setting() -> None:
    """Every MapVisionSettings field and map tunable can be set, and nothing else."""
    from map_vision.mapping import Tunables
    from map_vision.settings import MapVisionSettings

    expected = {_camel(n) for n in MapVisionSettings.model_fields}
    assert set(Tunables.model_fields) <= set(MapVisionSettings.model_fields)
    schema = json.loads((CHARTS / "map-vision" / "values.schema.json").read_text())["properties"]["mapVision"]
    assert set(schema["properties"]) == expected and schema["additionalProperties"] is False


@pytest.mark.parametrize("values", sorted(p.stem for p in (CHARTS / "map-vision" / "ci").glob("*.yaml")))
def test_map_vision_environment_is_accepted_by_the_service(render: Renderer, monkeypatch: pytest.MonkeyPatch, values: str) -> None:
    """The rendered environment loads through map-vision's own settings (MapVisionSettings, the
    map Tunables, ServiceSettings, KafkaSettings, OperatorAuthSettings); every MAP_VISION_* name is
    a field of one of them."""
    from longtail.auth import OperatorAuthSettings

    from map_vision.settings import MapVisionSettings

    docs = render.docs("map-vision", values)
    c = container(docs)
    env = dict(env_configmap(docs)["data"])
    env.update({e["name"]: "x" * 40 for e in c["env"] if e["name"] in SECRET_ENV})
    _load_env(monkeypatch, env, ("MAP_VISION_", "KAFKA_", "GRPC_", "METRICS_", "OPERATOR_"))

    fields = set(config.variables(MapVisionSettings).values())
    unknown = {name for name in env if name.startswith("MAP_VISION_")} - fields
    assert not unknown, f"the chart sets MAP_VISION_* variables map-vision does not read: {unknown}"
    settings = config.load(MapVisionSettings)
    tunables = settings.tunables()
    service = config.load(config.ServiceSettings)
    kafka = config.load(config.KafkaSettings)
    config.load(OperatorAuthSettings)
    assert service.grpc_host == "0.0.0.0" and service.grpc_port == c["readinessProbe"]["grpc"]["port"]
    assert kafka.bootstrap_servers == env["KAFKA_BOOTSTRAP_SERVERS"]
    assert settings.stall_timeout_s == float(env["MAP_VISION_STALL_TIMEOUT_S"])
    if "MAP_VISION_STALE_PASSES" in env:
        assert tunables.stale_passes == int(env["MAP_VISION_STALE_PASSES"])


# --- triton -------------------------------------------------------------------------------------


def test_triton_serves_the_s3_repository_in_explicit_mode(render: Renderer) -> None:
    docs = render.docs("triton", "defaults")
    deployment = one(docs, "Deployment")
    c = container(docs)
    assert c["image"] == "nvcr.io/nvidia/tritonserver:25.06-py3"
    assert c["command"] == ["tritonserver"]
    assert "--model-control-mode=explicit" in c["args"]
    assert "--model-repository=s3://s3:9000/longtail/models" in c["args"]
    assert [a for a in c["args"] if a.startswith("--model-repository")] == ["--model-repository=s3://s3:9000/longtail/models"]
    assert not [a for a in c["args"] if a.startswith("--load-model")], "explicit: nothing loaded until asked"
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert {"--http-port=8000", "--grpc-port=8001", "--metrics-port=8002", "--allow-metrics=true"} <= set(c["args"])
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    _assert_locked_down(docs, "Deployment", 1000)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsGroup"] == 1000, "the image's triton-server user"
    assert {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}} in pod["volumes"]
    env = {e["name"]: e for e in c["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "longtail-s3", "key": "access-key"}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "longtail-s3", "key": "secret-key"}
    assert env["AWS_DEFAULT_REGION"]["value"] == "us-east-1"
    assert "nvidia.com/gpu" not in c["resources"].get("limits", {}), "CPU by default"
    assert deployment["spec"]["replicas"] == 1
    services = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Service"}
    assert {p["name"] for p in services["triton"]["ports"]} == {"http", "grpc", "metrics"}
    assert services["triton-headless"]["clusterIP"] == "None"
    assert {p["name"] for p in services["triton-headless"]["ports"]} == {"http", "grpc"}, "a ServiceMonitor must not scrape pods twice"


def test_triton_external(render: Renderer) -> None:
    docs = render.docs("triton", "external")
    c = container(docs)
    assert "--model-repository=s3://https://s3.eu-central-1.amazonaws.com:443/acme-longtail-prod/models" in c["args"]
    assert "--model-control-mode=explicit" in c["args"] and "--load-model=perception" in c["args"]
    assert c["args"][-1] == "--model-load-thread-count=2"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["image"] == "registry.example.com/mirror/nvidia/tritonserver:25.06-pyt-python-py3"
    env = {e["name"]: e for e in c["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "longtail-s3-prod", "key": "AWS_ACCESS_KEY_ID"}
    assert env["AWS_DEFAULT_REGION"]["value"] == "eu-central-1"


def test_triton_observability_and_autoscaling(render: Renderer) -> None:
    docs = render.docs("triton", "observability")
    assert "replicas" not in one(docs, "Deployment")["spec"]
    assert one(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] == "triton"
    sm = one(docs, "ServiceMonitor")
    _check_service_monitor(sm, docs)
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    dashboards = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert [d["metadata"]["name"] for d in dashboards] == ["triton-dashboard-triton"]
    no_metrics = container(render.docs("triton", "defaults", ("--set", "metrics.enabled=false")))
    assert "--allow-metrics=false" in no_metrics["args"] and {p["name"] for p in no_metrics["ports"]} == {"http", "grpc"}


@pytest.mark.parametrize(("chart", "kind"), [("trigger-evaluator", "StatefulSet"), ("map-vision", "Deployment"), ("label-store", "Deployment"), ("inference", "Deployment"), ("trainer", "Deployment")])
def test_observability_of_the_consumers(render: Renderer, chart: str, kind: str) -> None:
    docs = render.docs(chart, "observability")
    _check_service_monitor(one(docs, "ServiceMonitor"), docs)
    dashboards = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert [d["metadata"]["name"] for d in dashboards] == [f"{chart}-dashboard-{chart}"]
    assert dashboards[0]["metadata"]["namespace"] == "monitoring"
    json.loads(dashboards[0]["data"][f"{chart}.json"])
    default_docs = render.docs(chart, "defaults")
    assert not [d for d in default_docs if d["kind"] == "ServiceMonitor" or "grafana_dashboard" in d["metadata"]["labels"]]


# --- the label store ----------------------------------------------------------------------------


def test_label_store_deployment_on_postgresql(render: Renderer) -> None:
    docs = render.docs("label-store", "defaults")
    spec = one(docs, "Deployment")["spec"]
    assert spec["replicas"] == 2 and spec["strategy"]["type"] == "RollingUpdate", "stateless given PostgreSQL"
    assert not [d for d in docs if d["kind"] == "StatefulSet"]
    c = container(docs)
    assert c["args"] == ["label-store"]
    assert c["readinessProbe"]["grpc"] == {"port": 50051, "service": LABEL_STORE.grpc}
    assert c["livenessProbe"]["grpc"] == {"port": 50051}
    _assert_locked_down(docs, "Deployment", 10001)
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert refs == {
        "DATABASE_URL": {"name": "longtail-label-store-db", "key": "database-url"},
        "OPERATOR_TOKEN_SECRET": {"name": "longtail-operator", "key": "token-secret"},
        "S3_ACCESS_KEY": {"name": "longtail-s3", "key": "access-key"},
        "S3_SECRET_KEY": {"name": "longtail-s3", "key": "secret-key"},
    }
    data = env_configmap(docs)["data"]
    assert not SECRET_ENV & data.keys(), "DATABASE_URL (with its password) is never inlined"
    assert "LABEL_STORE_DATA_DIR" not in data


def test_label_store_sqlite_is_one_replica_on_a_volume(render: Renderer) -> None:
    docs = render.docs("label-store", "sqlite")
    spec = one(docs, "Deployment")["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    assert not [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    c = container(docs)
    assert "DATABASE_URL" not in {e["name"] for e in c["env"]}
    data = env_configmap(docs)["data"]
    data_dir = data["LABEL_STORE_DATA_DIR"]
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == data_dir]
    (volume,) = [v for v in spec["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["persistentVolumeClaim"]["claimName"] == "label-store-data"
    assert not [k for k in data if k.startswith("S3_")]


def test_label_store_external(render: Renderer) -> None:
    docs = render.docs("label-store", "external")
    assert "replicas" not in one(docs, "Deployment")["spec"]
    assert one(docs, "HorizontalPodAutoscaler")["spec"]["maxReplicas"] == 8
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(docs)["env"]}
    assert refs["DATABASE_URL"] == {"name": "longtail-label-store-db-prod", "key": "DATABASE_URL"}
    assert refs["OPERATOR_TOKEN_SECRET"] == {"name": "longtail-operator-prod", "key": "signing-key"}


def test_label_store_schema_covers_every_setting() -> None:
    from label_store.settings import LabelStoreSettings

    schema = json.loads((CHARTS / "label-store" / "values.schema.json").read_text())["properties"]["labelStore"]
    assert set(schema["properties"]) == {_camel(n) for n in config.own_fields(LabelStoreSettings)} and schema["additionalProperties"] is False


@pytest.mark.parametrize("values", sorted(p.stem for p in (CHARTS / "label-store" / "ci").glob("*.yaml")))
def test_label_store_environment_is_accepted_by_the_service(render: Renderer, monkeypatch: pytest.MonkeyPatch, values: str) -> None:
    """The rendered environment loads through the classes label-store's serve() loads:
    ServiceSettings, KafkaSettings, LabelStoreSettings, OperatorAuthSettings and, when set, S3Settings;
    the database URL is the Secret's (PostgreSQL) or the SQLite file under the data directory."""
    from longtail.auth import OperatorAuthSettings

    from label_store.settings import LabelStoreSettings, database_url

    docs = render.docs("label-store", values)
    c = container(docs)
    env = dict(env_configmap(docs)["data"])
    secrets = {e["name"]: "x" * 40 for e in c["env"] if e["name"] in SECRET_ENV}
    if "DATABASE_URL" in secrets:
        secrets["DATABASE_URL"] = "postgresql+psycopg://longtail:pw@postgres:5432/longtail"
    env.update(secrets)
    _load_env(monkeypatch, env, ("LABEL_STORE_", "KAFKA_", "S3_", "GRPC_", "METRICS_", "OPERATOR_", "DATABASE_"))
    unknown = {n for n in env if n.startswith("LABEL_STORE_")} - set(config.variables(LabelStoreSettings).values())
    assert not unknown, f"the chart sets LABEL_STORE_* variables the label store does not read: {unknown}"
    settings = config.load(LabelStoreSettings)
    service = config.load(config.ServiceSettings)
    config.load(config.KafkaSettings)
    config.load(OperatorAuthSettings)
    assert service.grpc_port == c["readinessProbe"]["grpc"]["port"]
    if "S3_ENDPOINT" in env:
        assert config.load(config.S3Settings).endpoint == env["S3_ENDPOINT"]
    url = database_url(settings)
    if "DATABASE_URL" in env:
        assert url.startswith("postgresql")
    else:
        assert url == f"sqlite:///{env['LABEL_STORE_DATA_DIR']}/labels.db"


# --- inference ----------------------------------------------------------------------------------


def test_inference_deployment(render: Renderer) -> None:
    docs = render.docs("inference", "defaults")
    assert one(docs, "Deployment")["spec"]["replicas"] == 2
    c = container(docs)
    assert c["args"] == ["inference"]
    assert c["readinessProbe"]["grpc"] == {"port": 50051, "service": INFERENCE.grpc}
    _assert_locked_down(docs, "Deployment", 10001)
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert refs == {"S3_ACCESS_KEY": {"name": "longtail-s3", "key": "access-key"}, "S3_SECRET_KEY": {"name": "longtail-s3", "key": "secret-key"}}
    data = env_configmap(docs)["data"]
    assert data["TRITON_GRPC_ADDR"] == "triton:8001" and data["INFERENCE_MODEL_NAME"] == "multitask"
    # the startup budget covers waiting for Triton and loading the first version
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= float(data["INFERENCE_TRITON_WAIT_S"]) + float(data["INFERENCE_LOAD_TIMEOUT_S"])


def test_inference_autoscaling(render: Renderer) -> None:
    docs = render.docs("inference", "autoscaling")
    assert "replicas" not in one(docs, "Deployment")["spec"]
    hpa = one(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "inference"}
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_inference_schema_covers_every_setting() -> None:
    from inference.settings import InferenceSettings

    schema = json.loads((CHARTS / "inference" / "values.schema.json").read_text())["properties"]["inference"]
    assert set(schema["properties"]) == {_camel(n) for n in InferenceSettings.model_fields} and schema["additionalProperties"] is False


@pytest.mark.parametrize("values", sorted(p.stem for p in (CHARTS / "inference" / "ci").glob("*.yaml")))
def test_inference_environment_is_accepted_by_the_service(render: Renderer, monkeypatch: pytest.MonkeyPatch, values: str) -> None:
    """ServiceSettings, KafkaSettings, S3Settings, TritonSettings and InferenceSettings (serve())."""

    from inference.settings import InferenceSettings

    docs = render.docs("inference", values)
    c = container(docs)
    env = dict(env_configmap(docs)["data"])
    env.update({e["name"]: "x" * 40 for e in c["env"] if e["name"] in SECRET_ENV})
    _load_env(monkeypatch, env, ("INFERENCE_", "KAFKA_", "S3_", "GRPC_", "METRICS_", "TRITON_"))
    unknown = {n for n in env if n.startswith("INFERENCE_")} - {f"INFERENCE_{n.upper()}" for n in InferenceSettings.model_fields}
    assert not unknown, f"the chart sets INFERENCE_* variables inference does not read: {unknown}"
    config.load(InferenceSettings)
    config.load(config.ServiceSettings)
    config.load(config.KafkaSettings)
    assert config.load(config.S3Settings).endpoint == env["S3_ENDPOINT"]
    assert config.load(config.TritonSettings).grpc_addr == env["TRITON_GRPC_ADDR"]


# --- the trainer --------------------------------------------------------------------------------


def test_trainer_is_one_replica(render: Renderer) -> None:
    docs = render.docs("trainer", "defaults")
    spec = one(docs, "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}, "a rolling update would run two trainers allocating versions"
    assert not [d for d in docs if d["kind"] in ("HorizontalPodAutoscaler", "StatefulSet")]
    pdb = one(docs, "PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb
    c = container(docs)
    assert c["args"] == ["trainer"]
    assert c["readinessProbe"]["grpc"] == {"port": 50051, "service": TRAINER.grpc}
    _assert_locked_down(docs, "Deployment", 10001)
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert refs["OPERATOR_TOKEN_SECRET"] == {"name": "longtail-operator", "key": "token-secret"}
    assert set(refs) == {"OPERATOR_TOKEN_SECRET", "S3_ACCESS_KEY", "S3_SECRET_KEY"}
    data = env_configmap(docs)["data"]
    assert data["LABEL_STORE_ADDR"] == "label-store:50051"
    # CPU-heavy: the run's threads are requested
    assert float(c["resources"]["requests"]["cpu"]) >= int(data["TRAINER_THREADS"]) and "cpu" not in c["resources"]["limits"]
    # scratch emptyDir for TMPDIR, the tasks file from a ConfigMap
    pod = spec["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert "emptyDir" in volumes[mounts[data["TMPDIR"]]]
    tasks_dir = data["TRAINER_TASKS_FILE"].rsplit("/", 1)[0]
    assert volumes[mounts[tasks_dir]]["configMap"]["name"] == "longtail-trainer-tasks"


def test_trainer_schema_covers_every_setting() -> None:
    from trainer.settings import TrainerSettings

    schema = json.loads((CHARTS / "trainer" / "values.schema.json").read_text())["properties"]["trainer"]
    assert set(schema["properties"]) == {_camel(n) for n in config.own_fields(TrainerSettings)} and schema["additionalProperties"] is False


@pytest.mark.parametrize("values", sorted(p.stem for p in (CHARTS / "trainer" / "ci").glob("*.yaml")))
def test_trainer_environment_is_accepted_by_the_service(render: Renderer, monkeypatch: pytest.MonkeyPatch, values: str) -> None:
    """ServiceSettings, KafkaSettings, S3Settings, TrainerSettings (with LABEL_STORE_ADDR) and
    OperatorAuthSettings (serve())."""
    from longtail.auth import OperatorAuthSettings

    from trainer.settings import TrainerSettings

    docs = render.docs("trainer", values)
    c = container(docs)
    env = dict(env_configmap(docs)["data"])
    env.update({e["name"]: "x" * 40 for e in c["env"] if e["name"] in SECRET_ENV})
    _load_env(monkeypatch, env, ("TRAINER_", "LABEL_STORE_", "KAFKA_", "S3_", "GRPC_", "METRICS_", "OPERATOR_"))
    unknown = {n for n in env if n.startswith("TRAINER_")} - set(config.variables(TrainerSettings).values())
    assert not unknown, f"the chart sets TRAINER_* variables the trainer does not read: {unknown}"
    settings = config.load(TrainerSettings)
    assert settings.label_store_addr == env["LABEL_STORE_ADDR"]
    config.load(OperatorAuthSettings)
    config.load(config.ServiceSettings)
    config.load(config.KafkaSettings)
    assert config.load(config.S3Settings).endpoint == env["S3_ENDPOINT"]
    assert settings.threads == int(env["TRAINER_THREADS"])


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


def test_every_service_chart_has_a_dashboard() -> None:
    for chart in SERVICE_CHARTS:
        assert list((CHARTS / chart / "dashboards").glob("*.json")), f"{chart} has no dashboards/*.json"


def _check_prometheus_rule(doc: dict) -> None:
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    groups = doc["spec"]["groups"]
    assert groups and all(g["name"] and g["rules"] for g in groups)
    for rule in (r for g in groups for r in g["rules"]):
        assert rule["expr"] and (rule.get("alert") or rule.get("record")), rule
        assert not rule.get("alert") or rule["annotations"]["summary"], rule


def _promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        message = "promtool not found: apt-get install prometheus (scripts/bootstrap does it as root)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    return found


def test_alert_rules_are_valid_and_fire_as_their_unit_tests_say() -> None:
    """promtool checks the rule file and runs tests/charts/rules_test.yaml: each alert fires on the
    series it is meant for (after its `for:`), and stays quiet on the near misses."""
    promtool = _promtool()
    for args in (["check", "rules", *map(str, (CHARTS / "longtail" / "rules").glob("*.yaml"))], ["test", "rules", str(ROOT / "tests" / "charts" / "rules_test.yaml")]):
        proc = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"promtool {' '.join(args[:2])}:\n{proc.stdout}{proc.stderr}"
    defined = _defined_metrics()
    for path in (CHARTS / "longtail" / "rules").glob("*.yaml"):
        for rule in (r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]):
            for metric in re.findall(r"longtail_[a-z0-9_]+", rule["expr"]):
                assert re.sub(r"_(bucket|sum|count)$", "", metric) in defined, f"{rule['alert']} queries {metric}, which no service defines"


def test_umbrella_ships_the_system_dashboards_and_the_alert_rules(render: Renderer) -> None:
    docs = render.docs("longtail", "observability")
    dashboards = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"
                  and d["metadata"]["labels"]["app.kubernetes.io/name"] == "longtail"}
    assert set(dashboards) == {"longtail-dashboard-trigger-yield", "longtail-dashboard-pipeline", "longtail-dashboard-model-quality"}
    assert {d["metadata"]["namespace"] for d in dashboards.values()} == {"monitoring"}
    yield_panels = json.loads(dashboards["longtail-dashboard-trigger-yield"]["data"]["trigger-yield.json"])["panels"]
    exprs = " ".join(t["expr"] for p in yield_panels for t in p["targets"])
    for stage in ("fired", "uploaded", "labelled", "true_positive"):  # per trigger, every stage of the funnel
        assert f'stage="{stage}"' in exprs
    assert "longtail_trigger_yield_ratio" in exprs
    # the per-task panel repeats over the task variable: a task declared in tasks.yaml gets its panel
    quality = json.loads(dashboards["longtail-dashboard-model-quality"]["data"]["model-quality.json"])
    assert [p["repeat"] for p in quality["panels"] if p.get("repeat")] == ["task"]
    assert "task" in {v["name"] for v in quality["templating"]["list"]}
    rule = one(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    shipped = [yaml.safe_load(p.read_text())["groups"] for p in sorted((CHARTS / "longtail" / "rules").glob("*.yaml"))]
    assert rule["spec"]["groups"] == [g for groups in shipped for g in groups]  # verbatim: the local Prometheus loads the same file
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"LongtailTriggerYieldLow", "LongtailConsumerLagGrowing", "LongtailModelRefused"} <= alerts
    defaults = render.docs("longtail", "defaults")
    assert not [d for d in defaults if d["kind"] == "PrometheusRule" or d["metadata"]["name"].startswith("longtail-dashboard-")]


def test_dashboard_metrics_exist_in_the_code() -> None:
    defined = _defined_metrics()
    assert "longtail_gateway_frames_total" in defined
    assert {"longtail_trigger_frames_evaluated_total", "longtail_mapvision_features"} <= defined
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
                for metric in re.findall(r"\bnv_[a-z0-9_]+", target["expr"]):
                    assert metric in TRITON_METRICS, f"{path.name} panel {panel['title']!r} queries {metric}, which Triton does not export"
                assert re.search(r"\b(longtail|nv)_[a-z0-9_]+", target["expr"]), f"{path.name} panel {panel['title']!r} queries no known metric"


# --- the library, used by a service that does not exist yet --------------------------------


NEW_SERVICE_VALUES = """
replicaCount: 3
image: {repository: longtail, pullPolicy: IfNotPresent, tag: ""}
serviceAccount: {create: true, automount: false, name: ""}
service: {type: ClusterIP}
workload: {kind: StatefulSet}
persistence: {enabled: true, size: 5Gi, mountPath: /var/lib/longtail}
grpc: {port: 50061, healthService: longtail.example.v1.ExampleService}
metrics: {enabled: true, port: 9464, serviceMonitor: {enabled: true}}
kafka: {bootstrapServers: "kafka:9092", replicationFactor: 3}
exampleConsumer: {partitions: 12, uploadBudgetPerHour: 1000.5}
autoscaling: {enabled: true, minReplicas: 1, maxReplicas: 12, targetCPUUtilizationPercentage: 70}
pdb: {enabled: true, maxUnavailable: 1}
resources: {requests: {cpu: 100m, memory: 128Mi}}
"""


@pytest.fixture(scope="session")
def new_service(helm: str, charts: Path) -> Path:
    """A chart made the documented way: Chart.yaml + values.yaml + the one-line template."""
    chart = charts / "example-consumer"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: example-consumer\nversion: 0.1.0\nappVersion: '0.1.0'\n"
        "dependencies:\n  - {name: longtail-lib, version: 0.1.0, repository: file://../longtail-lib}\n"
    )
    (chart / "values.yaml").write_text(NEW_SERVICE_VALUES)
    (chart / "templates" / "all.yaml").write_text('{{ include "longtail-lib.all" . }}\n')
    _run([helm, "dependency", "update", chart])
    return chart


def test_library_statefulset_for_a_new_service(render: Renderer, new_service: Path) -> None:
    docs = render.docs("example-consumer")
    for doc in docs:
        if doc["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    sts = one(docs, "StatefulSet")
    assert "replicas" not in sts["spec"]
    assert sts["spec"]["serviceName"] == "example-consumer-headless"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    c = container(docs, "StatefulSet")
    assert c["args"] == ["example-consumer"]
    assert {"name": "data", "mountPath": "/var/lib/longtail"} in c["volumeMounts"]
    assert "env" not in c, "no S3 or fleet section, so no Secret references"
    data = env_configmap(docs, "StatefulSet")["data"]
    assert data["EXAMPLE_CONSUMER_PARTITIONS"] == "12" and data["EXAMPLE_CONSUMER_UPLOAD_BUDGET_PER_HOUR"] == "1000.5"
    assert "S3_ENDPOINT" not in data
    assert one(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert services["example-consumer-headless"]["spec"]["clusterIP"] == "None"
    assert {p["name"] for p in services["example-consumer-headless"]["spec"]["ports"]} == {"grpc"}, "a ServiceMonitor must not scrape pods twice"
    _check_service_monitor(one(docs, "ServiceMonitor"), docs)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "workload.kind=Deployment"], "persistence.enabled needs workload.kind: StatefulSet"),
        (["--set", "autoscaling.maxReplicas=0"], "autoscaling.maxReplicas (0) is below autoscaling.minReplicas (1)"),
        (["--set", "kafka.bootstrapServers="], "kafka.bootstrapServers is required"),
        (["--set", "exampleConsumer.budget.perHour=1"], "exampleConsumer.budget must be a single value"),
    ],
)
def test_library_fails_with_a_message(render: Renderer, new_service: Path, args: list[str], expected: str) -> None:
    assert expected in render.fails("example-consumer", *args, values=None)
