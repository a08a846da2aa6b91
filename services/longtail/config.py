"""Typed configuration from environment variables only.

Each section is a pydantic-settings class with an env prefix; loading one that lacks a required
variable, or has a malformed one, raises ConfigError naming the exact variable, so a service
fails at start with one clear line instead of a stack trace later.
"""

from __future__ import annotations

import os
from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(RuntimeError):
    """A required environment variable is missing or invalid."""


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return value


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_", frozen=True)
    bootstrap_servers: str = Field(description="Kafka bootstrap servers, e.g. 127.0.0.1:19092")
    replication_factor: int = Field(1, ge=1, description="replication factor of created topics")
    min_insync_replicas: int | None = Field(None, ge=1, description="min.insync.replicas of created topics; default: 2 from a replication factor of 3 up, else 1")

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, v: str) -> str:
        for server in v.split(","):
            _host_port(server.strip())
        return v

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> KafkaSettings:
        if self.min_insync_replicas is not None and self.min_insync_replicas > self.replication_factor:
            raise ValueError(f"KAFKA_MIN_INSYNC_REPLICAS ({self.min_insync_replicas}) exceeds KAFKA_REPLICATION_FACTOR ({self.replication_factor}): no acks=all write could ever succeed")
        return self


class S3Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="S3_", frozen=True)
    endpoint: str = Field(description="S3 endpoint host:port, e.g. 127.0.0.1:19000")
    access_key: str
    secret_key: str
    bucket: str = "longtail"
    region: str = "us-east-1"
    secure: bool = False

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        return _host_port(v)


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DATABASE_", frozen=True)
    url: str = Field(description="SQLAlchemy URL, e.g. sqlite:///labels.db or postgresql+psycopg://...")


class TritonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRITON_", frozen=True)
    grpc_addr: str = Field(description="Triton gRPC host:port")

    @field_validator("grpc_addr")
    @classmethod
    def _addr(cls, v: str) -> str:
        return _host_port(v)


class ServiceSettings(BaseSettings):
    """What every gRPC service needs: where to listen and where to expose metrics."""

    model_config = SettingsConfigDict(frozen=True)
    grpc_port: int = Field(50051, ge=0, lt=65536)
    grpc_host: str = "127.0.0.1"
    metrics_port: int = Field(9464, ge=0, lt=65536)
    shutdown_grace_seconds: float = Field(10.0, ge=0)
    log_level: str = "INFO"
    # TLS (longtail.tls): with a certificate and key the port speaks TLS only; GRPC_TLS_CA is the CA
    # client certificates must chain to, asked for ("optional") or required ("require"). Without a
    # certificate a service refuses to start unless GRPC_PLAINTEXT says plaintext is meant.
    grpc_tls_cert: str = Field("", description="PEM certificate of this server (required unless GRPC_PLAINTEXT)")
    grpc_tls_key: str = Field("", description="PEM private key of the certificate")
    grpc_tls_ca: str = Field("", description="PEM CA that client certificates must chain to")
    grpc_tls_client_auth: Literal["none", "optional", "require"] = Field("none", description="client certificates: not asked for, verified when presented, required")
    grpc_plaintext: bool = Field(False, description="listen and call other services without TLS: for local experiments only, never with a certificate set")
    grpc_health_port: int = Field(0, ge=0, lt=65536, description="a second, plaintext port serving only grpc.health.v1, for probes that speak no TLS (Kubernetes' native gRPC probes); 0: none")
    audit_log_file: str = Field("", description="JSON lines of audited calls (longtail.access), besides the log (empty: the log only)")


class TorchrunSettings(BaseSettings):
    """Where a process stands in a distributed training job: the variables torchrun (and the
    Kubeflow Trainer's `torch-distributed` runtime, which launches torchrun) set in every worker.
    Outside torchrun: one process, rank 0."""

    model_config = SettingsConfigDict(frozen=True)
    world_size: int = Field(1, ge=1, validation_alias="WORLD_SIZE", description="processes in the job")
    rank: int = Field(0, ge=0, validation_alias="RANK", description="this process's rank in the job")
    local_rank: int = Field(0, ge=0, validation_alias="LOCAL_RANK", description="this process's rank on its node (its GPU)")
    local_world_size: int = Field(1, ge=1, validation_alias="LOCAL_WORLD_SIZE", description="processes on this node")
    restart_count: int = Field(0, ge=0, validation_alias="TORCHELASTIC_RESTART_COUNT", description="times torchrun restarted the workers")
    max_restarts: int = Field(0, ge=0, validation_alias="TORCHELASTIC_MAX_RESTARTS", description="torchrun --max-restarts")
    use_agent_store: bool = Field(False, validation_alias="TORCHELASTIC_USE_AGENT_STORE", description="the process group's store is torchrun's rendezvous store (unset TORCH_DISABLE_SHARE_RDZV_TCP_STORE)")


S = TypeVar("S", bound=BaseSettings)


def _variable(settings_cls: type[BaseSettings], field: str) -> str:
    info = settings_cls.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):  # a variable outside the prefix
        return info.validation_alias.upper()
    return f"{settings_cls.model_config.get('env_prefix', '')}{field}".upper()


def variables(settings_cls: type[BaseSettings]) -> dict[str, str]:
    """Field name -> the environment variable it is read from."""
    return {field: _variable(settings_cls, field) for field in settings_cls.model_fields}


def own_fields(settings_cls: type[BaseSettings]) -> list[str]:
    """The fields read under the section's prefix (not those with a variable name of their own)."""
    return [field for field in settings_cls.model_fields if not isinstance(settings_cls.model_fields[field].validation_alias, str)]


def load(settings_cls: type[S], **overrides: Any) -> S:
    """Build a settings section from the environment, or raise ConfigError naming the variable."""
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            if not err["loc"]:  # a rule over several variables
                problems.append(f"{settings_cls.model_config.get('env_prefix', '')}*: {err['msg'].removeprefix('Value error, ')}")
                continue
            field = str(err["loc"][0])
            info = settings_cls.model_fields.get(field)
            hint = f" ({info.description})" if info is not None and info.description else ""
            reason = "is not set" if err["type"] == "missing" else f"is invalid: {err['msg']}"
            problems.append(f"{_variable(settings_cls, field)} {reason}{hint}")
        raise ConfigError("; ".join(problems)) from None


def load_optional(settings_cls: type[S], variable: str) -> S | None:
    """A section a service can run without: None when `variable` is unset or empty, else loaded
    (a malformed section still fails, naming the variable)."""
    if not os.environ.get(variable, "").strip():
        return None
    return load(settings_cls)
