"""Watermarks of a partition the cluster does not know everywhere yet: retried, then raised."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from longtail import kafka


class Broker:
    """A consumer whose broker answers `errors` in turn, then the offsets."""

    def __init__(self, *errors: int) -> None:
        self.errors = list(errors)
        self.calls = 0

    def get_watermark_offsets(self, partition, timeout):
        self.calls += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        return 0, 42


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(kafka.time, "sleep", lambda _s: None)


def test_a_topic_created_a_moment_ago_is_waited_for():
    broker = Broker(KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.LEADER_NOT_AVAILABLE)
    assert kafka.watermarks(broker, TopicPartition("t", 0)) == (0, 42)
    assert broker.calls == 3


def test_other_errors_are_raised_at_once():
    broker = Broker(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        kafka.watermarks(broker, TopicPartition("t", 0))
    assert broker.calls == 1


def test_a_topic_that_never_appears_is_raised_after_the_patience():
    broker = Broker(*[KafkaError.UNKNOWN_TOPIC_OR_PART] * 1000)
    with pytest.raises(KafkaException, match="UNKNOWN_TOPIC_OR_PART"):
        kafka.watermarks(broker, TopicPartition("t", 0), patience_s=0.0)
    assert broker.calls == 1
