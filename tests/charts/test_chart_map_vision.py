"""The map-vision chart: exactly one writer of the map (0 or 1 replica, Recreate, no HPA, an
evictable PDB), the optional operator key, a seed file from a ConfigMap, a `mapVision` section
that lists exactly the service's settings, schema rejections, and an environment map-vision's
own settings accept."""

from __future__ import annotations

import json

import pytest
from chart_helpers import CHARTS, SECRET_ENV, Renderer, assert_locked_down, camel, check_replica_limit, ci_values, container, env_configmap, load_env, one

from longtail import config
from longtail.registry import MAP_VISION

CHART = "map-vision"

# one writer of the map
REJECTED = [
    (["--set", "replicaCount=2"], ["/replicaCount", "maximum"]),
    (["--set", "replicaLimit.max=2"], ["/replicaLimit/max", "maximum"]),
    (["--set", "autoscaling.enabled=true"], ["/autoscaling/enabled"]),
    (["--set", "autoscaling.maxReplicas=2"], ["/autoscaling", "'maxReplicas' not allowed"]),
    (["--set", "workload.updateStrategy.type=RollingUpdate"], ["/workload/updateStrategy/type"]),
    (["--set", "pdb.minAvailable=1"], ["/pdb", "'minAvailable' not allowed"]),
    (["--set", "mapVision.stalePases=3"], ["/mapVision", "'stalePases' not allowed"]),
    (["--set-string", "mapVision.stalePasses=many"], ["/mapVision/stalePasses", "want integer"]),
    (["--set", "s3.endpoint=s3:9000"], ["additional properties 's3' not allowed"]),
]


@pytest.mark.parametrize(("args", "expected"), REJECTED, ids=[" ".join(args) for args, _ in REJECTED])
def test_schema_rejects(render: Renderer, args: list[str], expected: list[str]) -> None:
    error = render.fails(CHART, *args)
    for text in expected:
        assert text in error, f"expected {text!r} in:\n{error}"


@pytest.mark.parametrize(("args", "expected"), [([], "kafka.bootstrapServers is required")])
def test_required_values_are_named(render: Renderer, args: list[str], expected: str) -> None:
    assert expected in render.fails(CHART, *args, values=None)


def test_map_vision_is_one_writer(render: Renderer) -> None:
    docs = render.docs("map-vision", "defaults")
    deployment = one(docs, "Deployment")["spec"]
    assert deployment["replicas"] == 1
    assert deployment["strategy"] == {"type": "Recreate"}, "a rolling update would run two writers of the map"
    assert not [d for d in docs if d["kind"] in ("HorizontalPodAutoscaler", "StatefulSet")]
    check_replica_limit(docs)  # and the API server refuses a second one, kubectl scale included
    pdb = one(docs, "PodDisruptionBudget")["spec"]
    assert pdb == {**pdb, "maxUnavailable": 1} and "minAvailable" not in pdb, "a single pod must stay evictable"
    c = container(docs)
    assert c["args"] == ["map-vision"]
    assert c["readinessProbe"]["grpc"] == {"port": 50052, "service": MAP_VISION.grpc}
    assert c["livenessProbe"]["grpc"] == {"port": 50052}, "liveness asks for the server, which turns NOT_SERVING when the consumer stalls"
    assert_locked_down(docs, "Deployment", 10001)
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


def test_map_vision_schema_covers_every_setting() -> None:
    """Every MapVisionSettings field and map tunable can be set, and nothing else."""
    from map_vision.mapping import Tunables
    from map_vision.settings import MapVisionSettings

    expected = {camel(n) for n in MapVisionSettings.model_fields}
    assert set(Tunables.model_fields) <= set(MapVisionSettings.model_fields)
    schema = json.loads((CHARTS / "map-vision" / "values.schema.json").read_text())["properties"]["mapVision"]
    assert set(schema["properties"]) == expected and schema["additionalProperties"] is False


@pytest.mark.parametrize("values", ci_values(CHART))
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
    load_env(monkeypatch, env, ("MAP_VISION_", "KAFKA_", "GRPC_", "METRICS_", "OPERATOR_"))

    fields = set(config.variables(MapVisionSettings).values())
    unknown = {name for name in env if name.startswith("MAP_VISION_")} - fields
    assert not unknown, f"the chart sets MAP_VISION_* variables map-vision does not read: {unknown}"
    settings = config.load(MapVisionSettings)
    tunables = settings.tunables()
    service = config.load(config.ServiceSettings)
    kafka = config.load(config.KafkaSettings)
    config.load(OperatorAuthSettings)
    assert service.grpc_host == "0.0.0.0" and service.grpc_health_port == c["readinessProbe"]["grpc"]["port"]
    assert kafka.bootstrap_servers == env["KAFKA_BOOTSTRAP_SERVERS"]
    assert settings.stall_timeout_s == float(env["MAP_VISION_STALL_TIMEOUT_S"])
    if "MAP_VISION_STALE_PASSES" in env:
        assert tunables.stale_passes == int(env["MAP_VISION_STALE_PASSES"])
