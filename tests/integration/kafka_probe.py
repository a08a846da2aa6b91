"""Read what a service produced during a test: the records of a topic from a timestamp on, with
a throwaway consumer group (the integration tests share one broker and its topics)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import confluent_kafka
from confluent_kafka import TopicPartition

from longtail import topics


def _read_once(bootstrap: str, topic: topics.Topic, since_ms: int) -> list[tuple[str | None, object]]:
    """(key, value) of every record from `since_ms` to the topic's end at the time of the call;
    values that do not decode as the topic's type are skipped."""
    c = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False})
    try:
        starts = c.offsets_for_times([TopicPartition(topic.name, p, since_ms) for p in range(topic.partitions)], timeout=10)
        ends = {p: c.get_watermark_offsets(TopicPartition(topic.name, p), timeout=10)[1] for p in range(topic.partitions)}
        assignment = [tp for tp in starts if 0 <= tp.offset < ends[tp.partition]]
        out: list[tuple[str | None, object]] = []
        if not assignment:
            return out
        c.assign(assignment)
        remaining = {tp.partition for tp in assignment}
        deadline = time.monotonic() + 30
        while remaining and time.monotonic() < deadline:
            for msg in c.consume(500, 0.5):
                if msg.error():
                    continue
                try:
                    value = topic.value_type.FromString(msg.value())
                except Exception:
                    value = None
                if value is not None:
                    out.append((msg.key().decode() if msg.key() is not None else None, value))
                if msg.offset() + 1 >= ends[msg.partition()]:
                    remaining.discard(msg.partition())
        return out
    finally:
        c.close()


def read_since(bootstrap: str, topic: topics.Topic, since_ms: int, keep: Callable[[str | None, object], bool] = lambda k, v: True,
               want: int = 0, timeout: float = 60.0) -> list[tuple[str | None, object]]:
    """The (key, value) records of `topic` produced since `since_ms` that `keep` accepts. With
    `want`, reads again until at least that many are there or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        out = [(k, v) for k, v in _read_once(bootstrap, topic, since_ms) if keep(k, v)]
        if len(out) >= want or time.monotonic() > deadline:
            return out
        time.sleep(0.5)
