"""MAP_VISION_* environment variables: the service's own and every map tunable (docs/map-vision.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from longtail.registry import MAP_VISION

from map_vision.mapping import Tunables


class MapVisionSettings(BaseSettings, Tunables):
    """The map's tunables are fields too (MAP_VISION_STALE_PASSES, ...): one class reads them all."""

    model_config = SettingsConfigDict(env_prefix="MAP_VISION_", frozen=True, env_ignore_empty=True)
    seed_file: Path | None = Field(None, description="JSON/YAML map file seeded at start (features not yet on the map)")
    consumer_group: str = Field(MAP_VISION.name, min_length=1)
    publish_interval_s: float = Field(5.0, ge=0, description="counters/refinements of a feature are published at most this often")
    recent_disagreements: int = Field(10_000, ge=1, description="disagreements kept for ListDisagreements")
    batch_size: int = Field(200, ge=1, description="telemetry records per consumer batch")
    stall_timeout_s: float = Field(60.0, gt=0, description="health turns NOT_SERVING when the consumer made no progress for this long")

    def tunables(self) -> Tunables:
        return Tunables(**self.model_dump(include=set(Tunables.model_fields)))
