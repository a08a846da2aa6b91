"""The replicated local Kafka cluster (`longtail infra up --kafka-brokers 3`) and the broker-fault
drill over it (issue #19): cars streaming through a real gateway, the trigger-evaluator's
fleet-side worker deciding a trigger, the leader of the telemetry partition killed with -9 and
another broker stopped for a while; nothing acknowledged may be lost, no fire lost or decided twice.
Small here (bounded in time); `python -m bench brokers` runs it larger."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource
from waiting import wait_for

from longtail import topics

from drills.brokers import BrokerFaults, broker_faults
from longtail_dev.infra import KAFKA_CLUSTER, Launcher


@pytest.fixture(scope="module")
def kafka_cluster() -> dict[str, str]:
    """The three nodes, beside the single broker the other tests use (their own ports and data).
    Not put into os.environ: every other test talks to the single broker."""
    import os

    launcher = Launcher()
    before = {s.name for s in launcher.status() if s.ready}
    env = launcher.up(KAFKA_CLUSTER)
    yield env
    if os.environ.get("LONGTAIL_KEEP_INFRA") != "1":
        launcher.down([n for n in KAFKA_CLUSTER if n not in before])


def test_every_topic_is_replicated_three_times_with_two_in_sync(kafka_cluster):
    assert kafka_cluster["KAFKA_REPLICATION_FACTOR"] == "3" and kafka_cluster["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    admin = AdminClient({"bootstrap.servers": kafka_cluster["KAFKA_BOOTSTRAP_SERVERS"]})

    # Each broker learns of topics created at start-up a moment later: the one asked may lag.
    def listing_every_topic():
        metadata = admin.list_topics(timeout=10)
        return metadata if all(t.name in metadata.topics for t in topics.ALL) else None

    metadata = wait_for(listing_every_topic, timeout=60, what="every topic in the metadata")
    assert sorted(metadata.brokers) == [1, 2, 3]
    for topic in topics.ALL:
        partitions = metadata.topics[topic.name].partitions.values()
        assert len(partitions) == topic.partitions and all(len(p.replicas) == 3 for p in partitions), topic.name
    resources = [ConfigResource("topic", t.name) for t in topics.ALL]
    for resource, future in admin.describe_configs(resources).items():
        assert future.result()["min.insync.replicas"].value == "2", resource.name


def test_broker_faults_lose_no_acknowledged_frame_and_no_fire(kafka_cluster, s3):
    report = broker_faults(cars=4, seconds=36, rate=4, faults=BrokerFaults(kill_leader_at=5, restart_after=4, stop_broker_at=16, stop_for=10), say=print)
    print(report.as_dict())
    assert len(report.faults) == 2, report.faults
    counts = report.counts
    assert counts.frames_acked == counts.frames_submitted > 0, "every car drained: all it sent was acknowledged"
    assert counts.acked_frames_lost == 0
    assert counts.fires_expected > 0 and counts.fires_lost == 0 and counts.fires_conflicting == 0
    assert not set(counts.car_errors) & {"UNAUTHENTICATED", "PERMISSION_DENIED"}
