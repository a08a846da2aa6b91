"""Run backends (docs/trainer.md, "Run backends"): the TrainJob manifest against the Kubeflow
Trainer API models, the kubernetes backend against a stand-in for the Kubernetes API whose
"controller" trains the job in-process, the job's files in the object store, the device choice.

The torchrun backend and `train_job --run-id` against the real object store are integration tests
(tests/integration/test_trainer_jobs.py); a real API server with the Trainer CRDs is issue #20's
local control plane."""

from __future__ import annotations

import threading

import pytest
import torch
from kubernetes.client.exceptions import ApiException

from longtail import config
from longtail import tasks as tasks_mod
from longtail.config import S3Settings
from longtail.model import device, fitting, torchscript
from longtail.models.v1 import trainer_pb2 as T

from trainer import backends, data, hyperparameters, jobs, training, trainjob

S3 = S3Settings(endpoint="minio.storage:9000", access_key="a", secret_key="b", bucket="fleet")
SPEC = trainjob.JobSpec(namespace="training", image="registry.example/longtail-trainer:0.1.0", s3=S3, nodes=2, processes=4, gpus=1)


def small_job(run_id: str = "run-1", epochs: int = 2) -> tuple[jobs.JobInput, torch.nn.Module]:
    tasks = [d.spec for d in tasks_mod.load()]
    split = data.generated(tasks, 48, seed=3)["train"]
    model, _ = training.build_model(tasks, None, seed=3)
    job = jobs.JobInput.of(run_id, model, split.images, fitting.encode_targets(model.tasks, split.annotations), epochs=epochs, batch_size=16, lr=2e-3, seed=3, train_heads=[], processes=0)
    return job, model


# -- the TrainJob -----------------------------------------------------------------------------------


def test_the_trainjob_is_valid_for_the_kubeflow_trainer_api_and_runs_train_job():
    doc = trainjob.manifest(SPEC, "run-20261204-171000-abc123")
    parsed = trainjob.validate(doc)  # the API models parse it back, strictly typed
    assert parsed.to_dict() == doc
    assert doc["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and doc["kind"] == "TrainJob"
    assert doc["metadata"] == {
        "name": "lt-run-20261204-171000-abc123",
        "namespace": "training",
        "labels": {"app.kubernetes.io/managed-by": "longtail-trainer", trainjob.RUN_LABEL: "run-20261204-171000-abc123"},
        "annotations": {trainjob.RUN_LABEL: "run-20261204-171000-abc123"},
    }
    spec = doc["spec"]
    assert spec["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime", "name": "torch-distributed"}
    t = spec["trainer"]
    assert t["image"] == SPEC.image and t["numNodes"] == 2 and t["numProcPerNode"] == 4
    assert t["command"][:3] == ["python", "-m", "torch.distributed.run"] and t["command"][-2:] == ["-m", "trainer.train_job"] and "--max-restarts=1" in t["command"]
    assert t["args"] == ["--run-id", "run-20261204-171000-abc123"]
    assert t["resourcesPerNode"] == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}}
    env = {e["name"]: e for e in t["env"]}
    assert env["S3_ENDPOINT"]["value"] == "minio.storage:9000" and env["S3_BUCKET"]["value"] == "fleet"
    assert env["S3_SECRET_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "longtail-s3", "key": "secret-key"}}  # credentials never in the manifest
    assert "b" not in {e.get("value") for e in t["env"]}
    assert env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"]["value"] == "1"


def test_a_cpu_trainjob_requests_no_gpu_and_a_run_may_choose_its_processes():
    doc = trainjob.manifest(trainjob.JobSpec(namespace="ns", image="i:1", s3=S3), "r", processes=3)
    assert "nvidia.com/gpu" not in doc["spec"]["trainer"]["resourcesPerNode"]["limits"]
    assert doc["spec"]["trainer"]["numProcPerNode"] == 3


@pytest.mark.parametrize("run_id", ["run-1", "Run_ÄÖ/weird id", "r" * 200, "-x-"])
def test_trainjob_names_are_dns_labels_and_stable_per_run(run_id):
    name = trainjob.job_name(run_id)
    assert len(name) <= 63 and name[0].isalpha() and name[-1].isalnum()
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert trainjob.job_name(run_id) == name
    trainjob.validate(trainjob.manifest(trainjob.JobSpec(namespace="ns", image="i:1", s3=S3), run_id))


def test_trainjob_names_of_different_runs_differ():
    assert trainjob.job_name("Run_A") != trainjob.job_name("run-a")


@pytest.mark.parametrize(("field", "value", "message"), [("image", "", "TRAINER_JOB_IMAGE"), ("cpu", "two", "not a Kubernetes quantity"), ("memory", "4 GB", "not a Kubernetes quantity")])
def test_a_bad_job_setting_is_refused_with_its_name(field, value, message):
    with pytest.raises(ValueError, match=message):
        trainjob.manifest(trainjob.JobSpec(**{"namespace": "ns", "image": "i:1", "s3": S3, field: value}), "r")


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ({}, None),
        ({"conditions": [{"type": "Created", "status": "True"}]}, None),
        ({"conditions": [{"type": "Complete", "status": "False"}]}, None),
        ({"conditions": [{"type": "Complete", "status": "True", "message": "done"}]}, (True, "done")),
        ({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "too long"}]}, (False, "DeadlineExceeded: too long")),
    ],
)
def test_a_trainjob_is_finished_when_complete_or_failed(status, outcome):
    assert trainjob.finished({"status": status}) == outcome


# -- the kubernetes backend against a stand-in API ---------------------------------------------------


class FakeCluster:
    """The CustomObjectsApi calls the backend makes; a created TrainJob is "run" by a thread that
    does what the pods would (train_job --run-id: read the input, train, write progress and output),
    then sets the Complete condition — or Failed, when told to."""

    def __init__(self, store, fail: str = "", refuse: int = 0) -> None:
        self.store, self.fail, self.refuse = store, fail, refuse
        self.objects: dict[tuple[str, str], dict] = {}
        self.created: list[dict] = []
        self.deleted: list[str] = []
        self.threads: list[threading.Thread] = []

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        assert (group, version, plural) == ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
        if self.refuse:
            raise ApiException(status=self.refuse, reason="Unprocessable Entity")
        trainjob.validate(body)
        self.created.append(body)
        obj = {**body, "status": {"conditions": [{"type": "Created", "status": "True"}]}}
        self.objects[(namespace, body["metadata"]["name"])] = obj
        thread = threading.Thread(target=self._run, args=(obj,))
        self.threads.append(thread)
        thread.start()
        return obj

    def _run(self, obj):
        run_id = obj["spec"]["trainer"]["args"][1]
        if self.fail:
            obj["status"] = {"conditions": [{"type": "Failed", "status": "True", "reason": "PodFailed", "message": self.fail}]}
            return
        job = jobs.read_input(self.store, run_id)
        model = job.build()
        h = job.hyper
        history = training.train_encoded(
            model,
            job.images,
            job.targets,
            epochs=h["epochs"],
            batch_size=h["batch_size"],
            lr=h["lr"],
            seed=h["seed"],
            on_epoch=lambda e, p: jobs.write_progress(self.store, run_id, {"epoch": e + 1, "epochs": h["epochs"], "loss": p["total"]}),
        )
        jobs.write_output(self.store, run_id, model.state_dict(), history, {"world_size": 2, "device": "cpu", "samples_per_s": 100.0})
        obj["status"] = {"conditions": [{"type": "Complete", "status": "True", "message": "succeeded"}]}

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        if (namespace, name) not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        return self.objects[(namespace, name)]

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.deleted.append(name)
        self.objects.pop((namespace, name), None)


def test_the_kubernetes_backend_creates_one_trainjob_watches_it_and_returns_its_weights(store):
    cluster = FakeCluster(store)
    backend = backends.KubernetesBackend(store, SPEC, api_factory=lambda: cluster, poll_s=0.01)
    job, model = small_job()
    seen = []
    trained = backend.train(job, lambda fraction, epoch, loss: seen.append((fraction, epoch)))
    assert len(cluster.created) == 1 and cluster.created[0]["spec"]["trainer"]["args"] == ["--run-id", "run-1"]
    # what the "pods" trained is what an in-process run of the same input trains, bit for bit
    local = backends.LocalBackend().train(job, lambda *a: None)
    model.load_state_dict(trained.weights)
    assert torchscript.state_dict_sha256(model) == torchscript.state_dict_sha256(_with(job, local.weights))
    assert trained.history == local.history and trained.report["backend"] == "kubernetes" and trained.report["trainjob"] == "training/lt-run-1"
    assert cluster.deleted == ["lt-run-1"]  # a finished job leaves nothing behind ...
    assert not [k for k in store.objects if k.startswith(f"{jobs.PREFIX}/run-1/")]  # ... in the cluster nor in the store
    assert all(e in (None, 1, 2) for _, e in seen)


def _with(job, weights):
    model = job.build()
    model.load_state_dict(weights)
    return model


def test_a_failed_trainjob_fails_the_run_with_its_reason_and_stays_for_inspection(store):
    cluster = FakeCluster(store, fail="container trainer-node exited with 137 (OOMKilled)")
    backend = backends.KubernetesBackend(store, SPEC, api_factory=lambda: cluster, poll_s=0.01)
    with pytest.raises(backends.JobFailed, match=r"TrainJob training/lt-run-1 failed: PodFailed: container trainer-node exited with 137 \(OOMKilled\)"):
        backend.train(small_job()[0], lambda *a: None)
    assert cluster.deleted == []


def test_a_trainjob_the_api_refuses_fails_the_run_with_the_api_status(store):
    backend = backends.KubernetesBackend(store, SPEC, api_factory=lambda: FakeCluster(store, refuse=422), poll_s=0.01)
    with pytest.raises(backends.JobFailed, match="refused TrainJob training/lt-run-1: 422"):
        backend.train(small_job()[0], lambda *a: None)


def test_after_a_trainer_restart_a_running_trainjob_is_watched_not_created_again(store):
    cluster = FakeCluster(store)
    job, _ = small_job("run-2", epochs=1)
    jobs.write_input(store, job)
    running = trainjob.manifest(SPEC, "run-2")
    cluster.objects[("training", "lt-run-2")] = running  # no status yet: still running
    backend = backends.KubernetesBackend(store, SPEC, api_factory=lambda: cluster, poll_s=0.01)
    thread = threading.Thread(target=cluster._run, args=(running,))
    thread.start()
    trained = backend.train(job, lambda *a: None)
    thread.join()
    assert cluster.created == [] and len(trained.history) == 1


# -- runs choose a backend ------------------------------------------------------------------------------


def test_a_run_asking_for_a_backend_the_trainer_does_not_offer_is_refused(store):
    from trainer.registry import Registry
    from trainer.runner import Trainer

    trainer = Trainer(store, Registry(store), tasks_mod.load(), None, lambda *a: None)
    spec = T.RunSpec(epochs=1)
    spec.hyperparameters.update({"backend": "kubernetes"})
    with pytest.raises(ValueError, match="kubernetes is not configured on this trainer"):
        trainer.submit(spec)
    spec.hyperparameters.update({"backend": "slurm"})
    with pytest.raises(ValueError, match="backend: 'slurm' is not one of local, torchrun, kubernetes"):
        hyperparameters.check(spec, {"stop_sign"})


def test_the_kubernetes_backend_is_offered_only_when_configured(store):
    from trainer.settings import TrainerSettings

    local = TrainerSettings(label_store_addr="ls:50051")
    assert set(backends.configured(local, store, S3)) == {"local", "torchrun"}
    k8s = TrainerSettings(label_store_addr="ls:50051", backend="kubernetes", job_image="i:1", job_namespace="ns")
    assert set(backends.configured(k8s, store, S3)) == {"local", "torchrun", "kubernetes"}
    with pytest.raises(ValueError, match="TRAINER_JOB_IMAGE"):
        backends.configured(TrainerSettings(label_store_addr="ls:50051", backend="kubernetes", job_namespace="ns"), store, S3)


def test_the_torchrun_backend_runs_train_job_under_torchrun_with_the_run_id(store):
    command = backends.TorchrunBackend(store, processes=2, max_restarts=1, threads=2).command("run-9", 2)
    assert command[1:3] == ["-m", "torch.distributed.run"] and "--standalone" in command and "--nproc-per-node=2" in command and "--max-restarts=1" in command
    assert command[command.index("-m", 3) + 1] == "trainer.train_job" and command[-4:] == ["--run-id", "run-9", "--threads", "1"]


# -- the job's files ------------------------------------------------------------------------------------------


def test_a_job_input_survives_the_object_store_and_builds_the_same_network(store):
    job, model = small_job("run-3")
    jobs.write_input(store, job)
    again = jobs.read_input(store, "run-3")
    assert again.identity() == job.identity() and torch.equal(again.images, job.images)
    assert torchscript.state_dict_sha256(again.build()) == torchscript.state_dict_sha256(model)
    assert {t: {k: torch.equal(v, job.targets[t][k]) for k, v in tg.items()} for t, tg in again.targets.items()} == {t: dict.fromkeys(tg, True) for t, tg in job.targets.items()}
    with pytest.raises(FileNotFoundError, match="the input of run run-404 is not in the object store"):
        jobs.read_input(store, "run-404")


# -- the device ---------------------------------------------------------------------------------------------------


def test_the_device_is_the_cpu_unless_cuda_is_present_or_chosen(monkeypatch):
    monkeypatch.delenv("LONGTAIL_DEVICE", raising=False)
    assert device.preferred() == (torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    monkeypatch.setenv("LONGTAIL_DEVICE", "cpu")
    assert device.preferred() == torch.device("cpu") and device.describe(torch.device("cpu")).startswith("cpu (")
    monkeypatch.setenv("LONGTAIL_DEVICE", "tpu")
    with pytest.raises(config.ConfigError, match="LONGTAIL_DEVICE is invalid"):
        device.preferred()
    if not torch.cuda.is_available():
        monkeypatch.setenv("LONGTAIL_DEVICE", "cuda")
        with pytest.raises(config.ConfigError, match="no CUDA device is available here"):
            device.preferred()
