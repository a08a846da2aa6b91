"""The trainer's kubernetes backend on a real API server (issue #21, with #20's control plane): the
Kubeflow Trainer's CRDs (v2.3.0, from its Go module) installed, the TrainJob the trainer builds is
accepted as it is (strict field validation, nothing pruned), a malformed one is refused naming the
field, and the backend, with exactly the rights the trainer chart's Role grants (impersonating the
chart's service account), creates a TrainJob, sees it complete and deletes it. No Trainer controller
runs here: the test plays it (reads the job's input, trains, writes the output, sets `Complete`)."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from k8s_helpers import wait_established
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from longtail import tasks as tasks_mod
from longtail.config import S3Settings
from longtail.model import fitting

from longtail_dev.infra import k8s
from trainer import backends, data, jobs, training, trainjob

ROOT = Path(__file__).resolve().parents[2]
S3 = S3Settings(endpoint="minio.storage:9000", access_key="a", secret_key="b")


class MemoryStore:
    bucket = "longtail"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_at(self, key, value, content_type="", metadata=None):
        self.objects[key] = bytes(value)

    def get(self, key, bucket=""):
        return self.objects[key]

    def exists(self, key):
        return key in self.objects

    def delete(self, key):
        self.objects.pop(key, None)


@pytest.fixture(scope="module")
def trainer_crds(cluster, kubectl, tmp_path_factory):
    crds = Path(cluster["tools"]) / "crds" / "kubeflow-trainer"
    env = {"KUBECONFIG": cluster["KUBECONFIG"], "PATH": "/usr/bin:/bin", "HOME": str(tmp_path_factory.mktemp("kubectl-home"))}

    def run(*args: str) -> str:
        done = subprocess.run([kubectl, *args], capture_output=True, text=True, env=env, timeout=180)
        assert done.returncode == 0, done.stderr
        return done.stdout

    for f in sorted(crds.glob("trainer.kubeflow.org_*.yaml")):
        run("apply", "--server-side", "--force-conflicts", "-f", str(f))
    wait_established(kubectl, env, [f"{crd}.trainer.kubeflow.org" for crd in ("trainjobs", "clustertrainingruntimes", "trainingruntimes")])
    run("apply", "--server-side", "--force-conflicts", "-f", str(crds / "runtime-torch-distributed.yaml"))
    return crds


def _api(impersonate: str = "") -> client.CustomObjectsApi:
    api_client = k8s.api()
    if impersonate:
        api_client.set_default_header("Impersonate-User", impersonate)
    return client.CustomObjectsApi(api_client)


def test_the_trainjob_is_accepted_as_built_and_a_malformed_one_is_refused(trainer_crds, kube):
    api = _api()
    g = trainjob.API
    doc = trainjob.manifest(trainjob.JobSpec(namespace=kube.namespace, image="registry.example/longtail-trainer:0.1.0", s3=S3, nodes=2, processes=2, gpus=1), f"run-{uuid.uuid4().hex[:6]}")
    created = api.create_namespaced_custom_object(g.group, g.version, kube.namespace, g.plural, doc, field_validation="Strict")
    for key, value in doc["spec"].items():  # nothing pruned, nothing rewritten
        assert created["spec"][key] == value, key
    assert api.get_namespaced_custom_object(g.group, g.version, kube.namespace, g.plural, doc["metadata"]["name"])["spec"]["trainer"]["numNodes"] == 2
    assert api.get_cluster_custom_object(g.group, g.version, "clustertrainingruntimes", "torch-distributed")["metadata"]["name"] == "torch-distributed"  # the runtime it names

    bad = trainjob.manifest(trainjob.JobSpec(namespace=kube.namespace, image="i:1", s3=S3), "run-bad")
    bad["spec"]["trainer"]["numNodes"] = "two"
    with pytest.raises(ApiException) as refused:
        api.create_namespaced_custom_object(g.group, g.version, kube.namespace, g.plural, bad, field_validation="Strict")
    assert refused.value.status == 422 and "spec.trainer.numNodes" in trainjob.api_message(refused.value)
    unknown = trainjob.manifest(trainjob.JobSpec(namespace=kube.namespace, image="i:1", s3=S3), "run-unknown")
    unknown["spec"]["trainer"]["gpus"] = 1
    with pytest.raises(ApiException) as strict:
        api.create_namespaced_custom_object(g.group, g.version, kube.namespace, g.plural, unknown, field_validation="Strict")
    assert 'unknown field "spec.trainer.gpus"' in trainjob.api_message(strict.value)


def _play_the_controller(api: client.CustomObjectsApi, store: MemoryStore, namespace: str, name: str, stop: threading.Event) -> None:
    """What the Trainer controller and the pods would do: the job's training, then `Complete`."""
    g = trainjob.API
    while not stop.is_set():
        try:
            obj = api.get_namespaced_custom_object(g.group, g.version, namespace, g.plural, name)
            break
        except ApiException:
            time.sleep(0.2)
    else:
        return
    run_id = obj["spec"]["trainer"]["args"][1]
    job = jobs.read_input(store, run_id)
    model = job.build()
    h = job.hyper
    history = training.train_encoded(model, job.images, job.targets, epochs=h["epochs"], batch_size=h["batch_size"], lr=h["lr"], seed=h["seed"])
    jobs.write_output(store, run_id, model.state_dict(), history, {"world_size": 4, "device": "cpu"})
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {"status": {"conditions": [{"type": "Complete", "status": "True", "reason": "JobsCompleted", "message": "TrainJob is completed", "lastTransitionTime": now}]}}
    api.patch_namespaced_custom_object_status(g.group, g.version, namespace, g.plural, name, status)


def test_the_backend_with_the_charts_role_creates_watches_and_deletes_its_trainjob(trainer_crds, kube, charts):
    kube.helm("install", "trainer", str(charts / "trainer"), "-f", str(ROOT / "charts" / "trainer" / "ci" / "trainjobs.yaml"), "--wait=false")
    account = f"system:serviceaccount:{kube.namespace}:trainer"  # the chart's service account (release "trainer")
    as_trainer = _api(impersonate=account)
    admin = _api()

    tasks = [d.spec for d in tasks_mod.load()]
    split = data.generated(tasks, 48, seed=5)["train"]
    model, _ = training.build_model(tasks, None, seed=5)
    run_id = f"run-{uuid.uuid4().hex[:6]}"
    job = jobs.JobInput.of(run_id, model, split.images, fitting.encode_targets(model.tasks, split.annotations), epochs=1, batch_size=16, lr=2e-3, seed=5, train_heads=[], processes=0)
    store = MemoryStore()
    spec = trainjob.JobSpec(namespace=kube.namespace, image="registry.example/longtail-trainer:0.1.0", s3=S3, nodes=2, processes=2)
    backend = backends.KubernetesBackend(store, spec, api_factory=lambda: as_trainer, poll_s=0.2, timeout_s=120)  # type: ignore[arg-type]
    stop = threading.Event()
    controller = threading.Thread(target=_play_the_controller, args=(admin, store, kube.namespace, trainjob.job_name(run_id), stop))
    controller.start()
    try:
        trained = backend.train(job, lambda *a: None)
    finally:
        stop.set()
        controller.join(timeout=60)
    assert trained.report["trainjob"] == f"{kube.namespace}/{trainjob.job_name(run_id)}" and len(trained.history) == 1
    g = trainjob.API
    assert admin.list_namespaced_custom_object(g.group, g.version, kube.namespace, g.plural)["items"] == []  # deleted by the trainer's account
    assert store.objects == {}  # and its files
    # the Role grants TrainJobs and nothing else
    with pytest.raises(ApiException) as denied:
        client.AppsV1Api(as_trainer.api_client).create_namespaced_deployment(
            kube.namespace,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "x"},
                "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "x", "image": "x"}]}}},
            },
        )
    assert denied.value.status == 403
