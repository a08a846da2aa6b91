from __future__ import annotations

import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    """GATEWAY_* environment variables; every limit is announced to cars in Welcome.limits."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", frozen=True)
    id: str = Field(default_factory=lambda: f"gateway@{socket.gethostname()}")
    max_batch_frames: int = Field(1000, ge=1)
    max_snapshot_bytes: int = Field(16 * 1024 * 1024, ge=1)
    max_chunk_bytes: int = Field(1024 * 1024, ge=1024)
    max_batches_per_second: float = Field(50.0, gt=0, description="per-car telemetry rate limit")
    max_inflight_batches: int = Field(8, ge=1, description="per-car batches awaiting Kafka acks")
    session_queue: int = Field(256, ge=8, description="server->car messages buffered per car; a car that falls further behind is disconnected")
    hello_timeout_seconds: float = Field(10.0, gt=0)
    heartbeat_seconds: float = Field(30.0, gt=0)
    max_pending_commands: int = Field(100, ge=1, description="undelivered commands kept per offline car")
    revoked_file: str = Field("", description="deny list of revoked vehicle ids and certificate serials (gateway.revocation); empty = none")
    revocation_check_seconds: float = Field(2.0, gt=0, description="how often the deny list is checked for changes")
    fleet_model: str = Field("", description="model line (name) the cars run; empty = whichever PRODUCTION was published last")
