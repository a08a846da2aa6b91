"""TRAINER_* environment variables, and the label store's address (docs/trainer.md)."""

from __future__ import annotations

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
