"""Where a run's optimisation happens (docs/trainer.md, "Run backends").

The trainer service prepares every run itself (datasets, rehearsal frames, the network with its
fresh heads) and evaluates, gates and publishes it itself; only the training in between goes to a
backend:

- `local` (the default): in the trainer process, on `longtail.model.device.preferred()` (CUDA when
  present), as the trainer always did;
- `torchrun`: `torchrun --standalone --nproc-per-node N --max-restarts R -m trainer.train_job --run-id <id>`
  on this machine: data-parallel (DDP, gloo on the CPU, NCCL on GPUs), a failed worker restarts the
  job from its last checkpoint;
- `kubernetes`: a Kubeflow Trainer `TrainJob` (trainer.kubeflow.org/v1alpha1, the
  `torch-distributed` runtime, whose controller sets the variables torchrun reads) that runs the
  same command in the training image on N nodes (`trainer.trainjob`), created through the
  Kubernetes API and watched until it completes or fails.

The torchrun and kubernetes jobs exchange everything through the object store (`trainer.jobs`),
which also shows their progress; a job's failure (exit status, the TrainJob's Failed condition,
the timeout) fails the run with the reason. The run's weights come back into the service's model.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from longtail.config import S3Settings
from longtail.log import get_logger
from longtail.model import device as device_mod
from longtail.storage import ObjectStore

from trainer import jobs, training, trainjob
from trainer.settings import TrainerSettings

log = get_logger(__name__)

# (fraction of the training done, epochs finished or None, last epoch's loss or None)
OnProgress = Callable[[float, int | None, float | None], None]


class JobFailed(Exception):
    """The training job did not produce weights; the message says why (the run's error)."""


@dataclass
class Trained:
    weights: dict[str, torch.Tensor]
    history: list[dict[str, float]]
    report: dict[str, Any]  # backend, device, world size, samples/s, restarts ...


class Backend(Protocol):
    name: str

    def train(self, job: jobs.JobInput, on_progress: OnProgress) -> Trained: ...


@dataclass
class LocalBackend:
    """In the trainer process (a worker thread), on CUDA when present."""

    name: str = "local"

    def train(self, job: jobs.JobInput, on_progress: OnProgress) -> Trained:
        model = job.build()
        device = device_mod.preferred()
        h = job.hyper
        started = time.perf_counter()
        log.info("training in the trainer process", run_id=job.run_id, device=device_mod.describe(device))

        def on_epoch(epoch: int, parts: dict) -> None:
            on_progress((epoch + 1) / int(h["epochs"]), epoch + 1, float(parts.get("total", 0.0)))

        history = training.train_encoded(
            model,
            job.images,
            job.targets,
            epochs=int(h["epochs"]),
            batch_size=int(h["batch_size"]),
            lr=float(h["lr"]),
            seed=int(h["seed"]),
            only_heads=list(h.get("train_heads", [])),
            on_step=lambda done, total: on_progress(done / max(total, 1), None, None),
            on_epoch=on_epoch,
            device=device,
        )
        seconds = time.perf_counter() - started
        report = {"backend": self.name, "device": str(device), "world_size": 1, "train_s": seconds, "samples_per_s": int(job.images.shape[0]) * int(h["epochs"]) / seconds if seconds > 0 else None}
        return Trained(model.state_dict(), history, report)


def _watch_progress(store: ObjectStore, run_id: str, on_progress: OnProgress, seen: dict[str, Any]) -> None:
    try:
        progress = jobs.read_progress(store, run_id)
    except Exception as exc:  # noqa: BLE001 - progress is informative; the job's own status decides
        log.debug("progress unreadable", run_id=run_id, error=repr(exc))
        return
    if progress and progress != seen.get("last"):
        seen["last"] = progress
        on_progress(progress["epoch"] / max(progress["epochs"], 1), int(progress["epoch"]), float(progress["loss"]))


def _collect(store: ObjectStore, run_id: str, backend: str) -> Trained:
    try:
        weights, history, report = jobs.read_output(store, run_id)
    except Exception as exc:  # noqa: BLE001 - the job said it finished: its output must be there
        raise JobFailed(f"the {backend} job finished without its output ({jobs.key(run_id, jobs.OUTPUT)}): {exc}") from exc
    jobs.clear(store, run_id)
    return Trained(weights, history, {**report, "backend": backend})


@dataclass
class TorchrunBackend:
    """`torchrun --standalone` on this machine: `processes` data-parallel workers."""

    store: ObjectStore
    processes: int = 2
    max_restarts: int = 1
    threads: int = 2  # the trainer's cores, shared by the workers
    timeout_s: float = 6 * 3600.0
    log_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "longtail-trainer-jobs")
    poll_s: float = 1.0
    extra_args: tuple[str, ...] = ()  # appended to train_job's arguments (tests: --fail-at-epoch)
    name: str = "torchrun"

    def command(self, run_id: str, processes: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={processes}",
            f"--max-restarts={self.max_restarts}",
            "-m",
            "trainer.train_job",
            "--run-id",
            run_id,
            "--threads",
            str(max(1, self.threads // processes)),
            *self.extra_args,
        ]

    def train(self, job: jobs.JobInput, on_progress: OnProgress) -> Trained:
        processes = int(job.hyper.get("processes") or self.processes)
        jobs.clear(self.store, job.run_id)  # a run started again starts fresh
        jobs.write_input(self.store, job)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{job.run_id}.log"
        env = {**os.environ, "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1", "OMP_NUM_THREADS": str(max(1, self.threads // processes))}  # trainer.train_job.SHARED_STORE_WARNING
        command = self.command(job.run_id, processes)
        log.info("training with torchrun", run_id=job.run_id, processes=processes, max_restarts=self.max_restarts, log=str(log_path))
        seen: dict[str, Any] = {}
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # its own group: a timeout stops the workers too
            deadline = time.monotonic() + self.timeout_s
            try:
                while proc.poll() is None:
                    if time.monotonic() > deadline:
                        raise JobFailed(f"the torchrun job ran longer than {self.timeout_s:.0f} s (TRAINER_JOB_TIMEOUT_S); stopped. Its log: {log_path}")
                    _watch_progress(self.store, job.run_id, on_progress, seen)
                    time.sleep(self.poll_s)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, 9)
                    proc.wait()
        if proc.returncode != 0:
            tail = log_path.read_bytes()[-3000:].decode(errors="replace")
            raise JobFailed(f"torchrun exited with status {proc.returncode} ({processes} processes, --max-restarts {self.max_restarts}); the end of {log_path}:\n{tail}")
        return _collect(self.store, job.run_id, self.name)


class TrainJobs(Protocol):
    """The part of the Kubernetes API the kubernetes backend uses (kubernetes.client.CustomObjectsApi)."""

    def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, body: dict) -> Any: ...

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str) -> Any: ...

    def delete_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str) -> Any: ...


def kubernetes_api() -> TrainJobs:
    """The API of the cluster the trainer runs in (its service account), else of KUBECONFIG."""
    from kubernetes import client
    from kubernetes import config as kube_config

    try:
        kube_config.load_incluster_config()
    except kube_config.ConfigException:
        kube_config.load_kube_config()
    return client.CustomObjectsApi()


def own_namespace() -> str:
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return path.read_text().strip() if path.exists() else "default"


@dataclass
class KubernetesBackend:
    """A Kubeflow Trainer TrainJob per run, watched through the Kubernetes API."""

    store: ObjectStore
    spec: trainjob.JobSpec
    api_factory: Callable[[], TrainJobs] = kubernetes_api
    timeout_s: float = 6 * 3600.0
    poll_s: float = 2.0
    keep_failed: bool = True  # a failed TrainJob stays for `kubectl describe` / logs
    name: str = "kubernetes"
    _api: TrainJobs | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def api(self) -> TrainJobs:
        with self._lock:
            if self._api is None:
                self._api = self.api_factory()
            return self._api

    def train(self, job: jobs.JobInput, on_progress: OnProgress) -> Trained:
        from kubernetes.client.exceptions import ApiException

        processes = int(job.hyper.get("processes") or self.spec.processes)
        manifest = trainjob.manifest(self.spec, job.run_id, processes)
        name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
        g = trainjob.API
        try:
            existing = self.api.get_namespaced_custom_object(g.group, g.version, namespace, g.plural, name)
        except ApiException as exc:
            if exc.status != 404:
                raise JobFailed(f"cannot read TrainJob {namespace}/{name}: {exc.status} {exc.reason}") from exc
            existing = None
        if existing is None or trainjob.finished(existing) is not None:
            if existing is not None:  # a finished job of an earlier attempt of this run: start afresh
                self.api.delete_namespaced_custom_object(g.group, g.version, namespace, g.plural, name)
                self._wait_gone(namespace, name)
            jobs.clear(self.store, job.run_id)
            jobs.write_input(self.store, job)
            try:
                self.api.create_namespaced_custom_object(g.group, g.version, namespace, g.plural, manifest)
            except ApiException as exc:
                raise JobFailed(f"the Kubernetes API refused TrainJob {namespace}/{name}: {exc.status} {exc.reason}: {trainjob.api_message(exc)}") from exc
            log.info("TrainJob created", run_id=job.run_id, trainjob=f"{namespace}/{name}", nodes=self.spec.nodes, processes=processes, runtime=self.spec.runtime)
        else:  # the trainer restarted while its job ran: watch it again
            log.info("TrainJob already running: watching it", run_id=job.run_id, trainjob=f"{namespace}/{name}")
        seen: dict[str, Any] = {}
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                current = self.api.get_namespaced_custom_object(g.group, g.version, namespace, g.plural, name)
            except ApiException as exc:
                if exc.status == 404:
                    raise JobFailed(f"TrainJob {namespace}/{name} was deleted before it finished") from exc
                log.warning("cannot read the TrainJob; retrying", trainjob=f"{namespace}/{name}", status=exc.status)
                current = None
            outcome = trainjob.finished(current) if current is not None else None
            if outcome is not None:
                succeeded, reason = outcome
                if not succeeded:
                    if not self.keep_failed:
                        self.api.delete_namespaced_custom_object(g.group, g.version, namespace, g.plural, name)
                    raise JobFailed(f"TrainJob {namespace}/{name} failed: {reason}")
                break
            if time.monotonic() > deadline:
                raise JobFailed(f"TrainJob {namespace}/{name} still running after {self.timeout_s:.0f} s (TRAINER_JOB_TIMEOUT_S); left in place")
            _watch_progress(self.store, job.run_id, on_progress, seen)
            time.sleep(self.poll_s)
        trained = _collect(self.store, job.run_id, self.name)
        self.api.delete_namespaced_custom_object(g.group, g.version, namespace, g.plural, name)
        trained.report["trainjob"] = f"{namespace}/{name}"
        return trained

    def _wait_gone(self, namespace: str, name: str, timeout: float = 60.0) -> None:
        from kubernetes.client.exceptions import ApiException

        g = trainjob.API
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.api.get_namespaced_custom_object(g.group, g.version, namespace, g.plural, name)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise
            time.sleep(self.poll_s)
        raise JobFailed(f"TrainJob {namespace}/{name} of an earlier attempt is still being deleted after {timeout:.0f} s")


def configured(settings: TrainerSettings, store: ObjectStore, s3: S3Settings) -> dict[str, Backend]:
    """The backends this trainer offers: local and torchrun always; kubernetes when it is the
    default (TRAINER_BACKEND=kubernetes, with its TRAINER_JOB_* settings)."""
    offered: dict[str, Backend] = {
        "local": LocalBackend(),
        "torchrun": TorchrunBackend(store, processes=settings.processes, max_restarts=settings.max_restarts, threads=settings.threads, timeout_s=settings.job_timeout_s),
    }
    if settings.backend == "kubernetes":
        spec = trainjob.JobSpec(
            namespace=settings.job_namespace or own_namespace(),
            image=settings.job_image,
            s3=s3,
            runtime=settings.job_runtime,
            nodes=settings.job_nodes,
            processes=settings.processes,
            cpu=settings.job_cpu,
            memory=settings.job_memory,
            gpus=settings.job_gpus,
            s3_secret=settings.job_s3_secret,
            s3_secret_keys=(settings.job_s3_access_key_key, settings.job_s3_secret_key_key),
            max_restarts=settings.max_restarts,
            active_deadline_s=int(settings.job_timeout_s),
        )
        trainjob.manifest(spec, "settings-check")  # an empty image or a malformed quantity fails at start, naming the setting
        offered["kubernetes"] = KubernetesBackend(store, spec, timeout_s=settings.job_timeout_s)
    return offered
