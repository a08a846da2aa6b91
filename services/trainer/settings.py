"""TRAINER_* environment variables, and the label store's address (docs/trainer.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from longtail.registry import TRAINER


class TrainerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRAINER_", frozen=True, env_ignore_empty=True)
    label_store_addr: str = Field(validation_alias="LABEL_STORE_ADDR", description="label store gRPC host:port (tasks, suites, datasets, suite evaluation)")
    model_name: str = Field("multitask", description="model trained by default (and by label-triggered runs)")
    tasks_file: str = Field("", description="task declarations (default: ./tasks.yaml, else the repository's)")
    threads: int = Field(2, ge=1, description="torch intra-op threads of a run (fixed: reproducibility)")
    epochs: int = Field(4, ge=1, description="epochs when a run does not say")
    fallback_samples: int = Field(800, ge=2, description="generated frames when a run has no labelled data")
    label_threshold: int = Field(500, ge=0, description="new labels of a task that trigger a run; 0 = off")
    consumer_group: str = Field(TRAINER.name, min_length=1)
    auto_promote: bool = Field(False, description="label-triggered runs publish accepted versions as PRODUCTION (else CANDIDATE)")
    detector_min_auc: float = Field(0.8, ge=0.0, le=1.0)
    gate_shift_px: int = Field(1, ge=0, le=8, description="the gate counts a lost case only if the baseline passed it with the image moved this many pixels each way; 0 = every baseline pass counts")
    # Where runs train (trainer.backends, docs/trainer.md "Run backends"); a run may choose with the
    # hyperparameters `backend` and `processes`.
    backend: Literal["local", "torchrun", "kubernetes"] = Field("local", description="local: in the trainer process; torchrun: data-parallel processes on this machine; kubernetes: a Kubeflow Trainer TrainJob")
    processes: int = Field(2, ge=1, le=64, description="training processes per node (torchrun --nproc-per-node; the TrainJob's numProcPerNode)")
    max_restarts: int = Field(1, ge=0, description="torchrun --max-restarts: a failed worker restarts the job from its last checkpoint")
    job_timeout_s: float = Field(6 * 3600.0, gt=0, description="a torchrun or kubernetes job still running after this long fails the run")
    job_namespace: str = Field("", description="kubernetes: namespace of the TrainJobs (empty: the trainer pod's own)")
    job_image: str = Field("", description="kubernetes: the training image (the trainer's image; the chart sets it)")
    job_runtime: str = Field("torch-distributed", min_length=1, description="kubernetes: the ClusterTrainingRuntime the TrainJobs run on")
    job_nodes: int = Field(1, ge=1, le=256, description="kubernetes: training nodes (numNodes)")
    job_cpu: str = Field("2", description="kubernetes: CPU per node (requests = limits)")
    job_memory: str = Field("4Gi", description="kubernetes: memory per node (requests = limits)")
    job_gpus: int = Field(0, ge=0, description="kubernetes: nvidia.com/gpu per node (0: CPU training)")
    job_s3_secret: str = Field("longtail-s3", min_length=1, description="kubernetes: the Secret with the S3 credentials the job pods read")
    job_s3_access_key_key: str = Field("access-key", min_length=1, description="kubernetes: its key holding the access key")
    job_s3_secret_key_key: str = Field("secret-key", min_length=1, description="kubernetes: its key holding the secret key")
