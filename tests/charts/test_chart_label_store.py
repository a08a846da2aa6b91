"""The label-store chart: a Deployment on PostgreSQL (DATABASE_URL from a Secret), SQLite only as
one Recreate replica on a volume, production values, a `labelStore` section that lists exactly
the service's settings, schema rejections, and an environment the label store accepts."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
from chart_helpers import CHARTS, KUBE_VERSION, SECRET_ENV, Renderer, assert_locked_down, camel, ci_values, container, env_configmap, load_env, one

from longtail import config
from longtail.registry import LABEL_STORE
from studio_bridge.settings import BridgeSettings

CHART = "label-store"

# PostgreSQL from a Secret; SQLite only as one replica
REJECTED = [
    (["--set", "database.type=mysql"], ["/database/type"]),
    (["--set", "database.url=postgresql://u:p@db:5432/l"], ["/database", "'url' not allowed"]),
    (["--set", "database.existingSecret.name="], ["/database/existingSecret/name"]),
    (["--set", "database.type=sqlite"], ["/replicaCount", "maximum"]),
    (["--set", "database.type=sqlite", "--set", "replicaCount=1", "--set", "labelStore.dataDir=/data"], ["/workload"]),
    (["--set", "labelStore.leaseSecs=5"], ["/labelStore", "'leaseSecs' not allowed"]),
    (["--set-string", "labelStore.dbPoolSize=many"], ["/labelStore/dbPoolSize", "want integer"]),
    (["--set", "workload.kind=StatefulSet"], ["/workload/kind"]),
    (["--set", "fleet.tokenSecret.name=x"], ["additional properties 'fleet' not allowed"]),
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
        (["--set", "kafka.bootstrapServers=kafka:9092"], "s3.endpoint is required"),
    ],
)
def test_required_values_are_named(render: Renderer, args: list[str], expected: str) -> None:
    assert expected in render.fails(CHART, *args, values=None)


def test_label_store_deployment_on_postgresql(render: Renderer) -> None:
    docs = render.docs("label-store", "defaults")
    spec = one(docs, "Deployment")["spec"]
    assert spec["replicas"] == 2 and spec["strategy"]["type"] == "RollingUpdate", "stateless given PostgreSQL"
    assert not [d for d in docs if d["kind"] == "StatefulSet"]
    c = container(docs)
    assert c["args"] == ["label-store"]
    assert c["readinessProbe"]["grpc"] == {"port": 50052, "service": LABEL_STORE.grpc}
    assert c["livenessProbe"]["grpc"] == {"port": 50052}
    assert_locked_down(docs, "Deployment", 10001)
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
    assert set(schema["properties"]) == {camel(n) for n in config.own_fields(LabelStoreSettings)} and schema["additionalProperties"] is False


@pytest.mark.parametrize("values", ci_values(CHART))
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
    load_env(monkeypatch, env, ("LABEL_STORE_", "KAFKA_", "S3_", "GRPC_", "METRICS_", "OPERATOR_", "DATABASE_"))
    unknown = {n for n in env if n.startswith("LABEL_STORE_")} - set(config.variables(LabelStoreSettings).values())
    assert not unknown, f"the chart sets LABEL_STORE_* variables the label store does not read: {unknown}"
    settings = config.load(LabelStoreSettings)
    service = config.load(config.ServiceSettings)
    config.load(config.KafkaSettings)
    config.load(OperatorAuthSettings)
    assert service.grpc_health_port == c["readinessProbe"]["grpc"]["port"]
    if "S3_ENDPOINT" in env:
        assert config.load(config.S3Settings).endpoint == env["S3_ENDPOINT"]
    url = database_url(settings)
    if "DATABASE_URL" in env:
        assert url.startswith("postgresql")
    else:
        assert url == f"sqlite:///{env['LABEL_STORE_DATA_DIR']}/labels.db"


# --- the Label Studio bridge beside the label store (issue #17) -----------------------------------

STUDIO = ("--set", "labelStudio.enabled=true", "--set", "labelStudio.url=http://label-studio.labelling:8080", "--set", "labelStudio.tasks={stop_sign}")


def test_the_label_studio_bridge_runs_beside_the_label_store(render: Renderer) -> None:
    docs = render.docs(CHART, "defaults", STUDIO)
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    (bridge_name,) = [n for n in deployments if n.endswith("-studio-bridge")]
    bridge, store = deployments[bridge_name], next(d for n, d in deployments.items() if n != bridge_name)
    for doc in (bridge, *[d for d in docs if d["kind"] == "Service"]):
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    assert bridge["spec"]["replicas"] == 1 and bridge["spec"]["strategy"] == {"type": "Recreate"}
    # the label store's selectors never pick the bridge's pods (and the other way round)
    bridge_labels = bridge["spec"]["template"]["metadata"]["labels"]
    store_selector = store["spec"]["selector"]["matchLabels"]
    assert not all(bridge_labels.get(k) == v for k, v in store_selector.items())
    (c,) = bridge["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["studio", "bridge"] and c["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
    assert env["LABEL_STUDIO_URL"] == "http://label-studio.labelling:8080" and env["STUDIO_BRIDGE_TASKS"] == '["stop_sign"]'
    assert env["LABEL_STORE_ADDR"].endswith(":50051") and env["GRPC_TLS_CA"] == "/etc/longtail/tls/ca.crt"
    assert env["LABEL_STUDIO_TOKEN"] == {"secretKeyRef": {"name": "longtail-label-studio", "key": "token"}}
    assert {"STUDIO_BRIDGE_LABEL_STORE_TOKEN", "STUDIO_BRIDGE_WEBHOOK_SECRET", "S3_ACCESS_KEY", "S3_ENDPOINT"} <= env.keys()
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == bridge_name)
    assert service["spec"]["selector"] == bridge["spec"]["selector"]["matchLabels"]
    assert env["STUDIO_BRIDGE_PUBLIC_URL"] == f"http://{bridge_name}:8080"
    # its settings are what the bridge reads
    read = {"STUDIO_BRIDGE_" + name.upper() for name in BridgeSettings.model_fields}
    assert {k for k in env if k.startswith("STUDIO_BRIDGE_")} <= read


def test_the_bridge_is_off_by_default_and_needs_its_url(render: Renderer) -> None:
    assert not [d for d in render.docs(CHART, "defaults") if d["metadata"]["name"].endswith("-studio-bridge")]
    assert "/labelStudio/url" in render.fails(CHART, "--set", "labelStudio.enabled=true")  # the schema: a URL when enabled
    assert "/labelStudio" in render.fails(CHART, "--set", "labelStudio.replicas=2")
