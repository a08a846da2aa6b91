"""Local infrastructure launcher (Kafka, S3, PostgreSQL, Triton) used by the CLI, tests and demo."""

from longtail_dev.infra.launcher import COMPONENTS, DEFAULT, KAFKA_CLUSTER, InfraError, Launcher

__all__ = ["COMPONENTS", "DEFAULT", "KAFKA_CLUSTER", "InfraError", "Launcher"]
