"""The triton chart: NVIDIA's stock image on the S3 model repository in explicit model-control
mode (HTTP probes, three ports, the image's uid 1000, /dev/shm), production values, monitoring and
autoscaling, and schema rejections."""

from __future__ import annotations

import pytest
from chart_helpers import Renderer, assert_locked_down, check_service_monitor, container, one

CHART = "triton"

REJECTED = [
    (["--set", "image.tag="], ["/image/tag"]),
    (["--set", "triton.modelControlMode=poll"], ["/triton", "'modelControlMode' not allowed"]),
    (["--set", "s3.endpoint=https://s3.amazonaws.com"], ["/s3/endpoint"]),
    (["--set", "kafka.bootstrapServers=kafka:9092"], ["additional properties 'kafka' not allowed"]),
    (["--set", "grpc.port=0"], ["/grpc/port", "minimum"]),
]


@pytest.mark.parametrize(("args", "expected"), REJECTED, ids=[" ".join(args) for args, _ in REJECTED])
def test_schema_rejects(render: Renderer, args: list[str], expected: list[str]) -> None:
    error = render.fails(CHART, *args)
    for text in expected:
        assert text in error, f"expected {text!r} in:\n{error}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "s3.endpoint is required"),
        (["--set", "s3.endpoint=s3:9000", "--set", "triton.extraArgs={--model-control-mode=poll}"], "triton.extraArgs must not set --model-control-mode=poll"),
    ],
)
def test_required_values_are_named(render: Renderer, args: list[str], expected: str) -> None:
    assert expected in render.fails(CHART, *args, values=None)


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
    assert_locked_down(docs, "Deployment", 1000)
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
    check_service_monitor(sm, docs)
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    dashboards = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert [d["metadata"]["name"] for d in dashboards] == ["triton-dashboard-triton"]
    no_metrics = container(render.docs("triton", "defaults", ("--set", "metrics.enabled=false")))
    assert "--allow-metrics=false" in no_metrics["args"] and {p["name"] for p in no_metrics["ports"]} == {"http", "grpc"}
