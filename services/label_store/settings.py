"""LABEL_STORE_* environment variables, and the database URL (docs/label-store.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from longtail.registry import LABEL_STORE


class LabelStoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABEL_STORE_", frozen=True, env_ignore_empty=True)
    data_dir: Path = Field(Path("label-store-data"), description="where the default SQLite database lives")
    database_url: str = Field("", validation_alias="DATABASE_URL", description="SQLAlchemy URL, e.g. postgresql+psycopg://...; empty = SQLite under LABEL_STORE_DATA_DIR")
    consumer_group: str = Field(LABEL_STORE.name, min_length=1)
    lease_seconds: float = Field(600.0, gt=0, description="default lease duration")
    seed_tasks: bool = Field(True, description="create the shared model's tasks (stop_sign, traffic_light) if missing")
    batch_size: int = Field(200, ge=1)
    stall_timeout_s: float = Field(60.0, gt=0)
    db_pool_size: int = Field(20, ge=1)


def database_url(settings: LabelStoreSettings) -> str:
    return settings.database_url.strip() or f"sqlite:///{(settings.data_dir / 'labels.db').resolve()}"
