"""The inference chart: a Deployment (replicas or an HPA) pointed at Triton, a startup budget that
covers waiting for Triton and the first load, an `inference` section that lists exactly the
service's settings, schema rejections, and an environment inference accepts."""

from __future__ import annotations

import json

import pytest
from chart_helpers import CHARTS, SECRET_ENV, Renderer, assert_locked_down, camel, ci_values, container, env_configmap, load_env, one

from longtail import config
from longtail.registry import INFERENCE

CHART = "inference"

REJECTED = [
    (["--set", "triton.grpcAddr=http://triton:8001"], ["/triton/grpcAddr", "does not match pattern"]),
    (["--set", "triton.httpAddr=triton:8000"], ["/triton", "'httpAddr' not allowed"]),
    (["--set", "inference.maxBatch=0"], ["/inference/maxBatch", "minimum"]),
    (["--set", "inference.modelNmae=x"], ["/inference", "'modelNmae' not allowed"]),
    (["--set", "operator.tokenSecret.name=x"], ["additional properties 'operator' not allowed"]),
]


@pytest.mark.parametrize(("args", "expected"), REJECTED, ids=[" ".join(args) for args, _ in REJECTED])
def test_schema_rejects(render: Renderer, args: list[str], expected: list[str]) -> None:
    error = render.fails(CHART, *args)
    for text in expected:
        assert text in error, f"expected {text!r} in:\n{error}"


@pytest.mark.parametrize(("args", "expected"), [(["--set", "kafka.bootstrapServers=kafka:9092", "--set", "s3.endpoint=s3:9000"], "triton.grpcAddr is required")])
def test_required_values_are_named(render: Renderer, args: list[str], expected: str) -> None:
    assert expected in render.fails(CHART, *args, values=None)


def test_inference_deployment(render: Renderer) -> None:
    docs = render.docs("inference", "defaults")
    assert one(docs, "Deployment")["spec"]["replicas"] == 2
    c = container(docs)
    assert c["args"] == ["inference"]
    assert c["readinessProbe"]["grpc"] == {"port": 50052, "service": INFERENCE.grpc}
    assert_locked_down(docs, "Deployment", 10001)
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
    assert set(schema["properties"]) == {camel(n) for n in InferenceSettings.model_fields} and schema["additionalProperties"] is False


@pytest.mark.parametrize("values", ci_values(CHART))
def test_inference_environment_is_accepted_by_the_service(render: Renderer, monkeypatch: pytest.MonkeyPatch, values: str) -> None:
    """ServiceSettings, KafkaSettings, S3Settings, TritonSettings and InferenceSettings (serve())."""

    from inference.settings import InferenceSettings

    docs = render.docs("inference", values)
    c = container(docs)
    env = dict(env_configmap(docs)["data"])
    env.update({e["name"]: "x" * 40 for e in c["env"] if e["name"] in SECRET_ENV})
    load_env(monkeypatch, env, ("INFERENCE_", "KAFKA_", "S3_", "GRPC_", "METRICS_", "TRITON_"))
    unknown = {n for n in env if n.startswith("INFERENCE_")} - {f"INFERENCE_{n.upper()}" for n in InferenceSettings.model_fields}
    assert not unknown, f"the chart sets INFERENCE_* variables inference does not read: {unknown}"
    config.load(InferenceSettings)
    config.load(config.ServiceSettings)
    config.load(config.KafkaSettings)
    assert config.load(config.S3Settings).endpoint == env["S3_ENDPOINT"]
    assert config.load(config.TritonSettings).grpc_addr == env["TRITON_GRPC_ADDR"]
