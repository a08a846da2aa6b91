"""`longtail infra up` picks its components: one Kafka broker or the replicated cluster, never both."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from longtail_cli import app as cli


def test_kafka_brokers_is_one_or_three():
    result = CliRunner().invoke(cli.app, ["infra", "up", "--kafka-brokers", "2"])
    assert result.exit_code == 1 and "1 (the default: one broker) or 3 (a replicated cluster), not 2" in " ".join(result.output.split())


@pytest.mark.parametrize(("brokers", "kafka"), [(1, ["kafka"]), (3, ["kafka-1", "kafka-2", "kafka-3"])])
def test_the_cluster_replaces_the_single_broker(brokers, kafka):
    assert cli._components(triton=True, only=None, kafka_brokers=brokers) == [*kafka, "s3", "postgres", "triton"]


def test_one_kafka_at_a_time(monkeypatch, tmp_path):
    """Services get one KAFKA_BOOTSTRAP_SERVERS: starting the cluster beside a running single broker is refused, before anything starts."""
    from longtail_dev.infra import Launcher
    from longtail_dev.infra.launcher import Status

    monkeypatch.setattr(Launcher, "status", lambda self: [Status("kafka", 1, True, True, "", "")])
    monkeypatch.setattr(Launcher, "up", lambda self, names: pytest.fail("nothing may start"))
    result = CliRunner().invoke(cli.app, ["infra", "up", "--kafka-brokers", "3"])
    said = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 1 and "kafka already running: one Kafka at a time" in said and "infra down --only kafka" in said
