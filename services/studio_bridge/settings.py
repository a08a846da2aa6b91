"""STUDIO_BRIDGE_* and LABEL_STUDIO_* settings (docs/label-studio.md)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BridgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STUDIO_BRIDGE_", frozen=True, env_ignore_empty=True)
    label_studio_url: str = Field(..., validation_alias="LABEL_STUDIO_URL", description="Label Studio's base URL, e.g. http://127.0.0.1:18090")
    label_studio_token: str = Field(..., min_length=1, validation_alias="LABEL_STUDIO_TOKEN", description="an API token of a Label Studio admin (Authorization: Token)")
    label_store_addr: str = Field(..., validation_alias="LABEL_STORE_ADDR", description="host:port of the label store")
    label_store_token: str = Field(..., min_length=1, description="the bridge's own identity at the label store: a token with the bridge role (`longtail token label-studio --role bridge`)")
    webhook_secret: str = Field(..., min_length=16, description="Label Studio sends it with every webhook; requests without it are refused")
    image_secret: str = Field("", description="signs the image URLs put in Label Studio's tasks (default: the webhook secret)")
    http_host: str = "127.0.0.1"
    http_port: int = Field(18091, ge=0, lt=65536, description="webhooks, images, /healthz, /metrics")
    public_url: str = Field("", description="how Label Studio and browsers reach this bridge (default http://<http_host>:<http_port>)")
    project_prefix: str = Field("longtail", min_length=1, max_length=30, description="projects are titled '<prefix> <task>' (one label store per prefix)")
    tasks: list[str] = Field(default_factory=list, description="the label-store tasks to bridge (JSON list; empty: every task)")
    batch_size: int = Field(50, ge=1, le=500, description="tasks imported per request")
    max_open: int = Field(200, ge=1, description="unannotated tasks kept in each project")
    poll_seconds: float = Field(5.0, gt=0, description="between two syncs (push, close, config check)")
    lease_seconds: float = Field(120.0, gt=0, description="the lease taken on a sample while its annotation is submitted")

    def public(self, port: int) -> str:
        return (self.public_url or f"http://{self.http_host}:{port}").rstrip("/")
