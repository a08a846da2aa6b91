"""The gateway chart: its pods (native gRPC probes, locked-down security context, credentials only
from Secrets, a config checksum that rolls the pods), autoscaling without `replicas`, production
values, monitoring, schema rejections, and an environment the gateway's own settings accept."""

from __future__ import annotations

import json
import os
import re

import pytest
from chart_helpers import SECRET_ENV, Renderer, ci_values, container, env_configmap, one

from longtail import config
from longtail.registry import GATEWAY

CHART = "gateway"


REJECTED = [
    (["--set", "replicas=3"], ["additional properties 'replicas' not allowed"]),
    (["--set", "grpc.prot=50052"], ["/grpc", "'prot' not allowed"]),
    (["--set", "s3.existingSecret.accesKeyKey=x"], ["/s3/existingSecret", "'accesKeyKey'"]),
    (["--set-string", "grpc.port=fifty"], ["/grpc/port", "want integer"]),
    (["--set-string", "autoscaling.enabled=yes"], ["/autoscaling/enabled", "want boolean"]),
    (["--set", "kafka.bootstrapServers=http://kafka:9092"], ["/kafka/bootstrapServers", "does not match pattern"]),
    (["--set", "s3.endpoint=https://s3.amazonaws.com"], ["/s3/endpoint"]),
    (["--set", "workload.kind=DaemonSet"], ["/workload/kind"]),
    (["--set", "gateway.maxChunkBytes=10"], ["/gateway/maxChunkBytes"]),
]


@pytest.mark.parametrize(("args", "expected"), REJECTED, ids=[" ".join(args) for args, _ in REJECTED])
def test_schema_rejects(render: Renderer, args: list[str], expected: list[str]) -> None:
    error = render.fails(CHART, *args)
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
    assert expected in render.fails(CHART, *args, values=None)


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

    assert c["image"] == "longtail-gateway:0.1.0" and c["args"] == ["gateway"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"grpc": 50051, "health": 50052, "metrics": 9464}

    # native gRPC probes on the plaintext health-only port (TLS is on by default and Kubernetes'
    # probes speak no TLS): readiness/startup ask for the FleetGatewayService, liveness for the server
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"]["port"] == 50052, probe
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


@pytest.mark.parametrize("values", ci_values(CHART))
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
    assert service.grpc_host == "0.0.0.0" and service.grpc_health_port == container(docs)["readinessProbe"]["grpc"]["port"]
    assert kafka.bootstrap_servers == env["KAFKA_BOOTSTRAP_SERVERS"] and s3.endpoint == env["S3_ENDPOINT"]
    assert gateway.max_chunk_bytes == int(env["GATEWAY_MAX_CHUNK_BYTES"])


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
