"""INFERENCE_* environment variables (docs/inference.md)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from longtail.registry import INFERENCE


class InferenceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INFERENCE_", frozen=True, env_ignore_empty=True)
    model_name: str = Field("multitask", description="Triton model name (folder under models/) served by default")
    consumer_group: str = Field(INFERENCE.name, min_length=1)
    batch_size: int = Field(64, ge=1, description="snapshot records per consumer batch")
    max_batch: int = Field(64, ge=1, description="images per Triton call (at most the model's max_batch_size)")
    load_timeout_s: float = Field(300.0, gt=0, description="a version not READY in Triton after this is refused")
    stall_timeout_s: float = Field(60.0, gt=0, description="health turns NOT_SERVING when the consumer made no progress for this long")
    triton_wait_s: float = Field(120.0, ge=0, description="how long to wait for Triton at start-up")
