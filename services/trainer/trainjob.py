"""The Kubeflow Trainer `TrainJob` of a run (trainer.kubeflow.org/v1alpha1), built with the
project's API models (`kubeflow-trainer-api`), so a field the API does not have, or a value of the
wrong type, fails here rather than in the cluster.

The job runs on a `ClusterTrainingRuntime` (by default `torch-distributed`): its controller starts
`numNodes` pods and sets in each the variables torchrun reads (PET_NNODES, PET_NPROC_PER_NODE,
PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT), so the command is plain
`python -m torch.distributed.run -m trainer.train_job --run-id <id>` in the training image. The pods
read the run's input from the object store and write checkpoints, progress and the trained weights
there (`trainer.jobs`): they need the S3 settings and the credentials' Secret, nothing else.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from kubeflow_trainer_api import models as k

from longtail.config import S3Settings


@dataclass(frozen=True)
class Resource:
    group: str = "trainer.kubeflow.org"
    version: str = "v1alpha1"
    plural: str = "trainjobs"
    kind: str = "TrainJob"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


API = Resource()
RUN_LABEL = "longtail.dev/run-id"
QUANTITY = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?\d+)?")


@dataclass(frozen=True)
class JobSpec:
    """What every TrainJob of this trainer has in common (TRAINER_JOB_* settings)."""

    namespace: str
    image: str
    s3: S3Settings
    runtime: str = "torch-distributed"
    nodes: int = 1
    processes: int = 2  # per node
    cpu: str = "2"
    memory: str = "4Gi"
    gpus: int = 0
    s3_secret: str = "longtail-s3"
    s3_secret_keys: tuple[str, str] = ("access-key", "secret-key")  # the Secret's keys of the access key and the secret key
    max_restarts: int = 1
    active_deadline_s: int = 6 * 3600
    extra_env: dict[str, str] = field(default_factory=dict)


def job_name(run_id: str) -> str:
    """A DNS-1035 label (lower-case letters, digits and '-', starting with a letter, at most 63
    characters), the same for every attempt of a run; long or unusual run ids keep a hash suffix."""
    clean = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-")
    name = f"lt-{clean}"
    if len(name) > 63 or clean != run_id:
        name = f"{name[:50].rstrip('-')}-{hashlib.sha256(run_id.encode()).hexdigest()[:10]}"
    return name


def _env(spec: JobSpec) -> list[k.IoK8sApiCoreV1EnvVar]:
    plain = {
        "S3_ENDPOINT": spec.s3.endpoint,
        "S3_BUCKET": spec.s3.bucket,
        "S3_REGION": spec.s3.region,
        "S3_SECURE": "true" if spec.s3.secure else "false",
        "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1",  # trainer.train_job.SHARED_STORE_WARNING
        "LOG_FORMAT": "json",
        **spec.extra_env,
    }
    env = [k.IoK8sApiCoreV1EnvVar(name=n, value=v) for n, v in plain.items()]
    for name, key in zip(("S3_ACCESS_KEY", "S3_SECRET_KEY"), spec.s3_secret_keys, strict=True):
        ref = k.IoK8sApiCoreV1SecretKeySelector(name=spec.s3_secret, key=key)
        env.append(k.IoK8sApiCoreV1EnvVar(name=name, value_from=k.IoK8sApiCoreV1EnvVarSource(secret_key_ref=ref)))
    return env


def _quantity(text: str) -> k.IoK8sApimachineryPkgApiResourceQuantity:
    if not QUANTITY.fullmatch(text):
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 2, 500m, 4Gi)")
    return k.IoK8sApimachineryPkgApiResourceQuantity(text)


def manifest(spec: JobSpec, run_id: str, processes: int | None = None) -> dict[str, Any]:
    """The TrainJob of `run_id`, as the dict the Kubernetes API takes."""
    if not spec.image:
        raise ValueError("TRAINER_JOB_IMAGE is empty: the kubernetes backend needs the training image (the chart sets the trainer's own)")
    name = job_name(run_id)
    compute = {"cpu": _quantity(spec.cpu), "memory": _quantity(spec.memory)}
    limits = {**compute, **({"nvidia.com/gpu": _quantity(str(spec.gpus))} if spec.gpus else {})}
    job = k.TrainerV1alpha1TrainJob(
        api_version=API.api_version,
        kind=API.kind,
        metadata=k.IoK8sApimachineryPkgApisMetaV1ObjectMeta(name=name, namespace=spec.namespace, labels={"app.kubernetes.io/managed-by": "longtail-trainer", RUN_LABEL: name.removeprefix("lt-")}, annotations={RUN_LABEL: run_id}),
        spec=k.TrainerV1alpha1TrainJobSpec(
            runtime_ref=k.TrainerV1alpha1RuntimeRef(name=spec.runtime, kind="ClusterTrainingRuntime", api_group=API.group),
            active_deadline_seconds=int(spec.active_deadline_s),
            trainer=k.TrainerV1alpha1Trainer(
                image=spec.image,
                command=["python", "-m", "torch.distributed.run", f"--max-restarts={spec.max_restarts}", "-m", "trainer.train_job"],
                args=["--run-id", run_id],
                num_nodes=spec.nodes,
                num_proc_per_node=int(processes or spec.processes),
                resources_per_node=k.IoK8sApiCoreV1ResourceRequirements(requests=compute, limits=limits),
                env=_env(spec),
            ),
        ),
    )
    return job.to_dict()


def validate(document: dict[str, Any]) -> k.TrainerV1alpha1TrainJob:
    """Parse a TrainJob document with the API models (strict types; raises on a wrong field type)."""
    parsed = k.TrainerV1alpha1TrainJob.from_dict(document)
    if parsed is None:
        raise ValueError("not a TrainJob document")
    return parsed


def finished(trainjob: dict[str, Any]) -> tuple[bool, str] | None:
    """(succeeded, reason) when the TrainJob has a true Complete or Failed condition, else None."""
    for condition in (trainjob.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return True, condition.get("message", "")
        if condition.get("type") == "Failed":
            return False, f"{condition.get('reason', 'Failed')}: {condition.get('message', '')}".strip(": ")
    return None


def api_message(exc: Any) -> str:
    """The `message` of a Kubernetes API error's Status body (what the API server objected to)."""
    try:
        return str(json.loads(exc.body).get("message", exc.body))
    except (TypeError, ValueError, AttributeError):
        return str(getattr(exc, "body", "") or exc)
