"""The library chart `longtail-lib`: it lints; its defaults are values the shared schema accepts
and match the schema fragments one to one; a chart made only of its own values gets them (locked
down, probes, PDB, environment of the sections it declares); a service that does not exist yet,
made the documented way (Chart.yaml, values.yaml, the one-line template), renders a StatefulSet;
and the library fails with a message naming the value."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
from chart_helpers import CHARTS, CUSTOM_KINDS, KUBE_VERSION, LIBRARY, NAMESPACE, Renderer, check_service_monitor, container, env_configmap, one, run

SCHEMA = CHARTS / LIBRARY / "schema"
# Keys a parent or Helm adds: in every schema, never a default of the library.
NOT_DEFAULTS = {"global", "enabled", "longtail-lib"}


def test_lint_library(helm: str, charts: Path) -> None:
    run([helm, "lint", "--strict", charts / "longtail-lib"])


def _chart(helm: str, charts: Path, name: str, values: str, template: str) -> Path:
    """A chart made of Chart.yaml, values.yaml and one template, depending on the library."""
    chart = charts / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: 0.1.0\nappVersion: '0.1.0'\ndependencies:\n  - {{name: longtail-lib, version: 0.1.0, repository: file://../longtail-lib}}\n")
    (chart / "values.yaml").write_text(values)
    (chart / "templates" / "all.yaml").write_text(template)
    run([helm, "dependency", "update", chart])
    return chart


# --- the defaults -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def library_defaults(helm: str, charts: Path, render: Renderer) -> dict[str, dict]:
    """longtail-lib.defaults and longtail-lib.sections as the library renders them."""
    template = (
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: defaults}\ndata:\n  defaults: {{ include "longtail-lib.defaults" . | fromYaml | toJson | quote }}\n  sections: {{ include "longtail-lib.sections" . | fromYaml | toJson | quote }}\n'
    )
    _chart(helm, charts, "library-defaults", "{}\n", template)
    data = one(render.docs("library-defaults"), "ConfigMap")["data"]
    return {key: json.loads(value) for key, value in data.items()}


def _shared_schema(tmp_path: Path) -> dict:
    """The schema build.py makes for a chart that takes every library section as it is."""
    spec = importlib.util.spec_from_file_location("longtail_chart_schema_build", SCHEMA / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    chart = tmp_path / "every-section"
    chart.mkdir()
    sections = sorted(p.stem for p in (SCHEMA / "sections").glob("*.json"))
    (chart / "values.schema.patch.json").write_text(json.dumps({"properties": {s: {} for s in sections}}))
    return build.build(chart, SCHEMA)


def test_library_defaults_match_the_schema_fragments(library_defaults: dict[str, dict], tmp_path: Path) -> None:
    """Every default has its schema in common.json (a section: in sections/<name>.json) and every
    property there has a default; and the defaults are values that schema accepts."""
    defaults, sections = library_defaults["defaults"], library_defaults["sections"]
    common = json.loads((SCHEMA / "common.json").read_text())["properties"]
    assert set(defaults) == set(common) - NOT_DEFAULTS
    assert set(sections) == {p.stem for p in (SCHEMA / "sections").glob("*.json")}
    assert not set(defaults) & set(sections)
    jsonschema.Draft7Validator(_shared_schema(tmp_path)).validate({**defaults, **sections})


# --- a chart of its own values only ------------------------------------------------------------

MINIMAL_VALUES = """
grpc: {healthService: longtail.example.v1.MinimalService}
kafka: {bootstrapServers: "kafka:9092"}
minimalService: {batchSize: 10}
"""


@pytest.fixture(scope="session")
def minimal_service(helm: str, charts: Path) -> Path:
    """What a service chart holds: its own values and the one-line template."""
    return _chart(helm, charts, "minimal-service", MINIMAL_VALUES, '{{ include "longtail-lib.all" . }}\n')


def test_a_chart_of_its_own_values_gets_the_library_defaults(render: Renderer, minimal_service: Path) -> None:
    docs = render.docs("minimal-service")
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    assert {d["kind"] for d in docs} == {"ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget"}
    deployment = one(docs, "Deployment")["spec"]
    pod = deployment["template"]["spec"]
    c = container(docs)
    assert deployment["replicas"] == 1 and deployment["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": 0}
    assert c["image"] == "longtail-minimal-service:0.1.0" and c["args"] == ["minimal-service"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False and pod["terminationGracePeriodSeconds"] == 30
    assert c["readinessProbe"]["grpc"] == {"port": 50052, "service": "longtail.example.v1.MinimalService"}  # TLS on: the plaintext health port
    assert (c["startupProbe"]["periodSeconds"], c["startupProbe"]["failureThreshold"]) == (5, 60)
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"grpc": 50051, "health": 50052, "metrics": 9464}
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert "env" not in c, "no S3, fleet, operator or database section: no Secret references"
    assert env_configmap(docs)["data"] == {
        "GRPC_HOST": "0.0.0.0",
        "GRPC_PORT": "50051",
        "GRPC_HEALTH_PORT": "50052",
        "GRPC_TLS_CERT": "/etc/longtail/tls/tls.crt",  # TLS by default, from the <fullname>-tls Secret
        "GRPC_TLS_KEY": "/etc/longtail/tls/tls.key",
        "GRPC_TLS_CA": "/etc/longtail/tls/ca.crt",
        "GRPC_TLS_CLIENT_AUTH": "optional",
        "SHUTDOWN_GRACE_SECONDS": "10",
        "METRICS_PORT": "9464",
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
        "KAFKA_REPLICATION_FACTOR": "1",  # the section's defaults
        "MINIMAL_SERVICE_BATCH_SIZE": "10",
    }


def test_values_override_the_library_defaults(render: Renderer, minimal_service: Path) -> None:
    """false, 0 and lists replace a default; a null removes it, but never unlocks a security context."""
    docs = render.docs(
        "minimal-service",
        None,
        (
            "--set",
            "metrics.enabled=false",
            "--set",
            "pdb.enabled=false",
            "--set",
            "replicaCount=0",
            "--set",
            "args={serve,x}",
            "--set",
            "securityContext.readOnlyRootFilesystem=null",
            "--set",
            "podSecurityContext.runAsUser=null",
            "--set",
            "log=null",
        ),
    )
    assert {d["kind"] for d in docs} == {"ServiceAccount", "ConfigMap", "Service", "Deployment"}
    deployment = one(docs, "Deployment")["spec"]
    c = container(docs)
    assert deployment["replicas"] == 0 and c["args"] == ["serve", "x"]
    assert {p["name"] for p in c["ports"]} == {"grpc", "health"}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["template"]["spec"]["securityContext"]["runAsUser"] == 10001
    data = env_configmap(docs)["data"]
    assert data["METRICS_PORT"] == "0" and "LOG_LEVEL" not in data


# --- a new service ------------------------------------------------------------------------------


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
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: example-consumer\nversion: 0.1.0\nappVersion: '0.1.0'\ndependencies:\n  - {name: longtail-lib, version: 0.1.0, repository: file://../longtail-lib}\n")
    (chart / "values.yaml").write_text(NEW_SERVICE_VALUES)
    (chart / "templates" / "all.yaml").write_text('{{ include "longtail-lib.all" . }}\n')
    run([helm, "dependency", "update", chart])
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
    check_service_monitor(one(docs, "ServiceMonitor"), docs)


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


# --- TLS on the gRPC port (issue #18) -----------------------------------------------------------


def test_tls_mounts_the_secret_sets_the_settings_and_probes_a_plaintext_health_port(render: Renderer) -> None:
    """tls.enabled: the Secret (tls.crt, tls.key, ca.crt) mounted read-only and named in GRPC_TLS_*,
    the probes on the plaintext health-only port (Kubernetes' gRPC probes speak no TLS); with
    tls.certManager a Certificate for the Service's names writes that Secret."""
    args = ("--set", "tls.enabled=true", "--set", "tls.clientAuth=require", "--set", "tls.certManager.enabled=true", "--set", "tls.certManager.issuerRef.name=fleet-ca", "--set", "tls.certManager.extraDnsNames={gateway.fleet.example.com}")
    docs = render.docs("gateway", "defaults", args)
    env = env_configmap(docs)["data"]
    assert {k: env[k] for k in env if k.startswith("GRPC_TLS") or k == "GRPC_HEALTH_PORT"} == {
        "GRPC_TLS_CERT": "/etc/longtail/tls/tls.crt",
        "GRPC_TLS_KEY": "/etc/longtail/tls/tls.key",
        "GRPC_TLS_CA": "/etc/longtail/tls/ca.crt",
        "GRPC_TLS_CLIENT_AUTH": "require",
        "GRPC_HEALTH_PORT": "50052",
    }
    c = container(docs)
    assert {p["name"]: p["containerPort"] for p in c["ports"]}["health"] == 50052
    assert {c[probe]["grpc"]["port"] for probe in ("startupProbe", "readinessProbe", "livenessProbe")} == {50052}
    assert {"name": "tls", "mountPath": "/etc/longtail/tls", "readOnly": True} in c["volumeMounts"]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    certificate = one(docs, "Certificate")
    assert volume["secret"]["secretName"] == certificate["spec"]["secretName"] == f"{certificate['metadata']['name']}-tls"
    name = certificate["metadata"]["name"]
    assert certificate["spec"]["dnsNames"] == [name, f"{name}.{NAMESPACE}", f"{name}.{NAMESPACE}.svc", "gateway.fleet.example.com"]
    assert certificate["spec"]["issuerRef"] == {"name": "fleet-ca", "kind": "Issuer", "group": "cert-manager.io"}
    for doc in docs:
        if doc["kind"] not in CUSTOM_KINDS | {"Certificate"}:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_tls_from_an_existing_secret_and_without_it(render: Renderer) -> None:
    docs = render.docs("label-store", "defaults", ("--set", "tls.enabled=true", "--set", "tls.existingSecret=label-store-tls"))
    assert not [d for d in docs if d["kind"] == "Certificate"]
    (volume,) = [v for v in one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls"]
    assert volume["secret"]["secretName"] == "label-store-tls" and env_configmap(docs)["data"]["GRPC_TLS_CLIENT_AUTH"] == "optional"
    plain = render.docs("label-store", "defaults", ("--set", "tls.enabled=false"))
    data = env_configmap(plain)["data"]
    assert not any(k.startswith("GRPC_TLS") for k in data) and data["GRPC_PLAINTEXT"] == "true"
    assert container(plain)["readinessProbe"]["grpc"]["port"] == 50051 and "GRPC_HEALTH_PORT" not in data


def test_tls_values_are_checked(render: Renderer) -> None:
    assert "tls.certManager.issuerRef.name is required" in render.fails("gateway", "--set", "tls.enabled=true", "--set", "tls.certManager.enabled=true")
    assert "clientAuth" in render.fails("gateway", "--set", "tls.clientAuth=sometimes")
