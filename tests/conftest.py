"""Shared fixtures. Integration tests run against the real local infrastructure that
`longtail infra up` starts (same launcher as the demo); a component already running is reused,
and what the test session started it also stops (unless LONGTAIL_KEEP_INFRA=1).
"""

from __future__ import annotations

import os

import pytest

from longtail_dev.infra import Launcher


class InfraPool:
    def __init__(self) -> None:
        self.launcher = Launcher()
        self.running_before = {s.name for s in self.launcher.status() if s.ready}
        self.started: list[str] = []
        self.env: dict[str, str] = {}

    def require(self, name: str) -> dict[str, str]:
        if name not in self.env:
            env = self.launcher.up([name])
            if name not in self.running_before:
                self.started.append(name)
            os.environ.update(env)
            self.env[name] = env
        return self.env[name]

    def close(self) -> None:
        if self.started and os.environ.get("LONGTAIL_KEEP_INFRA") != "1":
            self.launcher.down(self.started)


@pytest.fixture(scope="session")
def infra_pool():
    pool = InfraPool()
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def kafka(infra_pool) -> str:
    return infra_pool.require("kafka")["KAFKA_BOOTSTRAP_SERVERS"]


@pytest.fixture(scope="session")
def s3(infra_pool) -> dict[str, str]:
    return infra_pool.require("s3")


@pytest.fixture(scope="session")
def postgres(infra_pool) -> str:
    return infra_pool.require("postgres")["DATABASE_URL"]


@pytest.fixture(scope="session")
def triton(infra_pool) -> str:
    return infra_pool.require("triton")["TRITON_GRPC_ADDR"]


@pytest.fixture(scope="session")
def prometheus(infra_pool) -> str:
    """Base URL of the local Prometheus, which scrapes every ServiceProcess and Triton."""
    return infra_pool.require("prometheus")["PROMETHEUS_URL"]


@pytest.fixture(scope="session")
def label_studio(infra_pool) -> dict[str, str]:
    """LABEL_STUDIO_URL, LABEL_STUDIO_TOKEN (an admin's) and the admin's login."""
    return infra_pool.require("label-studio")
