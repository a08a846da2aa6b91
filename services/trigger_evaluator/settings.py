"""TRIGGER_EVALUATOR_* environment variables (docs/trigger-evaluator.md)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TriggerEvaluatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIGGER_EVALUATOR_", frozen=True, env_ignore_empty=True)
    fleet_worker: bool = Field(True, description="run the fleet-side evaluation stages; false = catalog API only")
    stall_timeout_s: float = Field(120.0, gt=0, description="health turns NOT_SERVING when a fleet stage made no progress for this long")
