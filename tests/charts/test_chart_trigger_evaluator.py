"""The trigger-evaluator chart: a StatefulSet (stable pod names, nothing on disk) bounded by the
partition count of fleet.telemetry.v1, S3 optional, the operator key from a Secret, schema
rejections, and an environment the evaluator's own settings accept."""

from __future__ import annotations

import json

import pytest
from chart_helpers import CHARTS, SECRET_ENV, TELEMETRY_PARTITIONS, Renderer, assert_locked_down, ci_values, container, env_configmap, load_env, one

from longtail import config
from longtail.registry import TRIGGER_EVALUATOR

CHART = "trigger-evaluator"

# a StatefulSet, bounded by the 6 partitions of fleet.telemetry.v1
REJECTED = [
    (["--set", "autoscaling.maxReplicas=7"], ["/autoscaling/maxReplicas", "maximum"]),
    (["--set", "replicaCount=7"], ["/replicaCount", "maximum"]),
    (["--set", "workload.kind=Deployment"], ["/workload/kind"]),
    (["--set", "triggerEvaluator.fleetWorker=false"], ["/triggerEvaluator/fleetWorker"]),
    (["--set", "triggerEvaluator.partitions=12"], ["/triggerEvaluator", "'partitions' not allowed"]),
    (["--set", "fleet.tokenSecret.name=x"], ["additional properties 'fleet' not allowed"]),
    (["--set", "operator.tokenSecret.nam=x"], ["/operator/tokenSecret", "'nam' not allowed"]),
    (["--set", "persistence.sise=1Gi"], ["/persistence", "'sise' not allowed"]),
]


@pytest.mark.parametrize(("args", "expected"), REJECTED, ids=[" ".join(args) for args, _ in REJECTED])
def test_schema_rejects(render: Renderer, args: list[str], expected: list[str]) -> None:
    error = render.fails(CHART, *args)
    for text in expected:
        assert text in error, f"expected {text!r} in:\n{error}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "kafka.bootstrapServers is required"),
        (["--set", "kafka.bootstrapServers=kafka:9092", "--set", "s3.enabled=true"], "s3.endpoint is required"),
    ],
)
def test_required_values_are_named(render: Renderer, args: list[str], expected: str) -> None:
    assert expected in render.fails(CHART, *args, values=None)


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
    assert c["args"] == ["trigger-evaluator"] and c["image"] == "longtail-trigger-evaluator:0.1.0"
    assert c["readinessProbe"]["grpc"] == {"port": 50052, "service": TRIGGER_EVALUATOR.grpc}
    assert c["startupProbe"]["grpc"]["service"] == TRIGGER_EVALUATOR.grpc
    assert c["livenessProbe"]["grpc"] == {"port": 50052}
    assert_locked_down(docs, "StatefulSet", 10001)
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert refs == {"OPERATOR_TOKEN_SECRET": {"name": "longtail-operator", "key": "token-secret"}}, "S3 is off by default"
    data = env_configmap(docs, "StatefulSet")["data"]
    assert not SECRET_ENV & data.keys() and not [k for k in data if k.startswith("S3_")]
    assert data["TRIGGER_EVALUATOR_FLEET_WORKER"] == "1"
    # the fleet worker writes nothing to disk (no Faust data directory any more): no APP_* settings, only /tmp mounted
    assert not [k for k in data if k.startswith("APP_")]
    assert [m["mountPath"] for m in c["volumeMounts"]] == ["/tmp", "/etc/longtail/tls"]  # and the TLS Secret, read-only
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


@pytest.mark.parametrize("values", ci_values(CHART))
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
    load_env(monkeypatch, env, ("TRIGGER_EVALUATOR_", "KAFKA_", "S3_", "GRPC_", "METRICS_", "OPERATOR_"))

    known = set(config.variables(TriggerEvaluatorSettings).values())
    assert "TRIGGER_EVALUATOR_FLEET_WORKER" in known
    unknown = {name for name in env if name.startswith("TRIGGER_EVALUATOR_")} - known
    assert not unknown, f"the chart sets TRIGGER_EVALUATOR_* variables the evaluator does not read: {unknown}"
    evaluator = config.load(TriggerEvaluatorSettings)
    assert evaluator.fleet_worker is (env["TRIGGER_EVALUATOR_FLEET_WORKER"] == "1")
    service = config.load(config.ServiceSettings)
    kafka = config.load(config.KafkaSettings)
    config.load(OperatorAuthSettings)
    assert service.grpc_host == "0.0.0.0" and service.grpc_health_port == c["readinessProbe"]["grpc"]["port"]
    assert kafka.bootstrap_servers == env["KAFKA_BOOTSTRAP_SERVERS"]
    if "S3_ENDPOINT" in env:
        assert config.load(config.S3Settings).endpoint == env["S3_ENDPOINT"]
    else:
        with pytest.raises(config.ConfigError):  # the service then runs without archived-segment backtests
            config.load(config.S3Settings)
