"""The trainer chart: exactly one replica (Recreate, no HPA), CPU requests for the run's threads,
a scratch emptyDir and the tasks from a ConfigMap, a `trainer` section that lists exactly the
service's settings, schema rejections, and an environment the trainer accepts."""

from __future__ import annotations

import json

import pytest
from chart_helpers import CHARTS, SECRET_ENV, Renderer, assert_locked_down, camel, check_replica_limit, ci_values, container, env_configmap, load_env, one

from longtail import config
from longtail.registry import TRAINER

CHART = "trainer"

# one replica
REJECTED = [
    (["--set", "replicaCount=2"], ["/replicaCount", "maximum"]),
    (["--set", "replicaLimit.max=2"], ["/replicaLimit/max", "maximum"]),
    (["--set", "autoscaling.enabled=true"], ["/autoscaling/enabled"]),
    (["--set", "autoscaling.maxReplicas=2"], ["/autoscaling", "'maxReplicas' not allowed"]),
    (["--set", "workload.updateStrategy.type=RollingUpdate"], ["/workload/updateStrategy/type"]),
    (["--set", "pdb.minAvailable=1"], ["/pdb", "'minAvailable' not allowed"]),
    (["--set", "labelStore.addr=label-store"], ["/labelStore/addr", "does not match pattern"]),
    (["--set", "trainer.threads=0"], ["/trainer/threads", "minimum"]),
    (["--set-json", "trainer.detectorMinAuc=1.5"], ["/trainer/detectorMinAuc", "maximum"]),
    (["--set", "trainer.gpus=1"], ["/trainer", "'gpus' not allowed"]),
    (["--set", "trainer.backend=slurm"], ["/trainer/backend", "value must be one of"]),
    (["--set", "trainer.jobCpu=two"], ["/trainer/jobCpu", "does not match pattern"]),
    (["--set", "trainer.processes=0"], ["/trainer/processes", "minimum"]),
]


@pytest.mark.parametrize(("args", "expected"), REJECTED, ids=[" ".join(args) for args, _ in REJECTED])
def test_schema_rejects(render: Renderer, args: list[str], expected: list[str]) -> None:
    error = render.fails(CHART, *args)
    for text in expected:
        assert text in error, f"expected {text!r} in:\n{error}"


@pytest.mark.parametrize(("args", "expected"), [(["--set", "kafka.bootstrapServers=kafka:9092", "--set", "s3.endpoint=s3:9000"], "labelStore.addr is required")])
def test_required_values_are_named(render: Renderer, args: list[str], expected: str) -> None:
    assert expected in render.fails(CHART, *args, values=None)


def test_trainer_is_one_replica(render: Renderer) -> None:
    docs = render.docs("trainer", "defaults")
    spec = one(docs, "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}, "a rolling update would run two trainers allocating versions"
    assert not [d for d in docs if d["kind"] in ("HorizontalPodAutoscaler", "StatefulSet")]
    check_replica_limit(docs)  # and the API server refuses a second one, kubectl scale included
    pdb = one(docs, "PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb
    c = container(docs)
    assert c["args"] == ["trainer"]
    assert c["readinessProbe"]["grpc"] == {"port": 50052, "service": TRAINER.grpc}
    assert_locked_down(docs, "Deployment", 10001)
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
    assert set(schema["properties"]) == {camel(n) for n in config.own_fields(TrainerSettings)} and schema["additionalProperties"] is False


@pytest.mark.parametrize("values", ci_values(CHART))
def test_trainer_environment_is_accepted_by_the_service(render: Renderer, monkeypatch: pytest.MonkeyPatch, values: str) -> None:
    """ServiceSettings, KafkaSettings, S3Settings, TrainerSettings (with LABEL_STORE_ADDR) and
    OperatorAuthSettings (serve())."""
    from longtail.auth import OperatorAuthSettings

    from trainer.settings import TrainerSettings

    docs = render.docs("trainer", values)
    c = container(docs)
    env = dict(env_configmap(docs)["data"])
    env.update({e["name"]: "x" * 40 for e in c["env"] if e["name"] in SECRET_ENV})
    load_env(monkeypatch, env, ("TRAINER_", "LABEL_STORE_", "KAFKA_", "S3_", "GRPC_", "METRICS_", "OPERATOR_"))
    unknown = {n for n in env if n.startswith("TRAINER_")} - set(config.variables(TrainerSettings).values())
    assert not unknown, f"the chart sets TRAINER_* variables the trainer does not read: {unknown}"
    settings = config.load(TrainerSettings)
    assert settings.label_store_addr == env["LABEL_STORE_ADDR"]
    config.load(OperatorAuthSettings)
    config.load(config.ServiceSettings)
    config.load(config.KafkaSettings)
    assert config.load(config.S3Settings).endpoint == env["S3_ENDPOINT"]
    assert settings.threads == int(env["TRAINER_THREADS"])


def test_trainjobs_backend_gets_a_role_for_trainjobs_only_and_the_trainers_image(render: Renderer) -> None:
    docs = render.docs("trainer", "trainjobs")
    role, binding = one(docs, "Role"), one(docs, "RoleBinding")
    assert role["rules"] == [
        {"apiGroups": ["trainer.kubeflow.org"], "resources": ["trainjobs"], "verbs": ["create", "get", "list", "watch", "delete"]},
        {"apiGroups": ["trainer.kubeflow.org"], "resources": ["trainjobs/status"], "verbs": ["get"]},
    ]
    account = one(docs, "ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert [(s["kind"], s["name"]) for s in binding["subjects"]] == [("ServiceAccount", account["metadata"]["name"])]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True and account["automountServiceAccountToken"] is True  # the API needs the token
    data = env_configmap(docs)["data"]
    assert data["TRAINER_BACKEND"] == "kubernetes" and data["TRAINER_JOB_IMAGE"] == container(docs)["image"]
    assert (data["TRAINER_JOB_S3_SECRET"], data["TRAINER_JOB_S3_ACCESS_KEY_KEY"], data["TRAINER_JOB_S3_SECRET_KEY_KEY"]) == ("longtail-s3", "access-key", "secret-key")  # s3.existingSecret's
    assert (data["TRAINER_JOB_NODES"], data["TRAINER_JOB_GPUS"]) == ("2", "1")


def test_other_backends_get_no_role_and_no_token(render: Renderer) -> None:
    for args in ((), ("--set", "trainer.backend=torchrun")):
        docs = render.docs("trainer", "defaults", args)
        assert not [d for d in docs if d["kind"] in ("Role", "RoleBinding")]
        assert one(docs, "Deployment")["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert not [d for d in render.docs("trainer", "trainjobs", ("--set", "rbac.create=false")) if d["kind"] in ("Role", "RoleBinding")]
