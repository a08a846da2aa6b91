"""Stateful stream processing on Kafka: tables backed by compacted changelog topics, and stages
that consume, process, produce and commit with the table durable before the commit.

The Kafka Streams / faust table model, on confluent-kafka threads: a `ChangelogTable` is a dict
per input partition, restored from its changelog when the partition is assigned; a `Stage` runs
consume → process → outputs acked → table durable → commit, so a worker killed at any point
restarts from its last commit with its tables never ahead of the outputs they caused. The
trigger evaluator's fleet worker is built from these (docs/fleet-side.md).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

from longtail import metrics, topics
from longtail.kafka import Producer, watermarks
from longtail.log import get_logger
from longtail.ops.v1 import events_pb2 as ops_events

log = get_logger(__name__)


class ChangelogTable:
    """A dict per partition, persisted as a compacted changelog topic with the input's partition
    numbers. Writes are buffered until `flush`, so the stage decides when state becomes durable."""

    def __init__(self, name: str, bootstrap: str, group_id: str, producer: Producer) -> None:
        self.name, self.bootstrap, self.producer = name, bootstrap, producer
        self.topic = f"{group_id}-{name}-changelog"
        self.partitions: dict[int, dict[str, dict]] = {}
        self._dirty: dict[tuple[int, str], dict] = {}

    def ensure_topic(self, input_topic: str, replication_factor: int, min_insync_replicas: int | None = None) -> None:
        """The changelog has the input topic's partition count (a partition's state sits with it)."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        existing = admin.list_topics(timeout=30).topics
        if input_topic not in existing:
            raise RuntimeError(f"{input_topic} does not exist (topics are created at start-up, never by auto-create)")
        partitions = len(existing[input_topic].partitions)
        if self.topic in existing:
            have = len(existing[self.topic].partitions)
            if have != partitions:
                raise RuntimeError(f"{self.topic} has {have} partitions but {input_topic} has {partitions}; they must match")
            return
        config = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000", "min.insync.replicas": str(topics.min_insync(replication_factor, min_insync_replicas))}
        futures = admin.create_topics([NewTopic(self.topic, num_partitions=partitions, replication_factor=replication_factor, config=config)])
        for future in futures.values():
            try:
                future.result(30)
            except confluent_kafka.KafkaException as exc:
                if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        topics.wait_until_listed(admin, [self.topic])

    def get(self, partition: int, key: str) -> dict:
        return self.partitions.setdefault(partition, {}).get(key) or {}

    def set(self, partition: int, key: str, value: dict) -> None:
        self.partitions.setdefault(partition, {})[key] = value
        self._dirty[(partition, key)] = value

    def flush(self) -> None:
        for (partition, key), value in self._dirty.items():
            self.producer.produce_partition(self.topic, partition, key, json.dumps(value, separators=(",", ":")).encode())
        self._dirty.clear()
        self.producer.flush()

    def restore(self, partitions: list[int]) -> None:
        """Rebuild the given partitions from the changelog (start to high watermark)."""
        self._dirty = {k: v for k, v in self._dirty.items() if k[0] not in partitions}
        consumer = confluent_kafka.Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"{self.topic}-restore", "enable.auto.commit": False, "enable.partition.eof": True})
        try:
            ends = {}
            for p in partitions:
                _low, high = watermarks(consumer, confluent_kafka.TopicPartition(self.topic, p))
                self.partitions[p] = {}
                if high > 0:
                    ends[p] = high
            if ends:
                consumer.assign([confluent_kafka.TopicPartition(self.topic, p, confluent_kafka.OFFSET_BEGINNING) for p in ends])
            while ends:
                msg = consumer.poll(30)
                if msg is None:
                    raise RuntimeError(f"restoring {self.topic}: no progress in 30 s")
                part = msg.partition()
                if (err := msg.error()) is not None:
                    if err.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        if part is not None:
                            ends.pop(part, None)
                        continue
                    raise confluent_kafka.KafkaException(err)
                raw_key, value, offset = msg.key(), msg.value(), msg.offset()
                assert part is not None and raw_key is not None and offset is not None  # a record of a keyed table
                key = raw_key.decode()
                if value is None:
                    self.partitions[part].pop(key, None)
                else:
                    self.partitions[part][key] = json.loads(value)
                if offset + 1 >= ends.get(part, 0):
                    ends.pop(part, None)
        finally:
            consumer.close()
        log.info("table restored", table=self.name, partitions=partitions, keys=sum(len(self.partitions[p]) for p in partitions))

    def drop(self, partitions: list[int]) -> None:
        for p in partitions:
            self.partitions.pop(p, None)
        self._dirty = {k: v for k, v in self._dirty.items() if k[0] not in partitions}


class Stage:
    """consume → process(records of one poll) → outputs acked → table durable → commit, in a thread.

    `process` gets the poll's records and the stage (for `each` and `dead_letter`)."""

    def __init__(self, name: str, bootstrap: str, group_id: str, topic: str, table: ChangelogTable, process: Callable[[list, Stage], None], producer: Producer, service: str, batch_size: int = 200) -> None:
        self.name, self.topic, self.table, self.process, self.producer, self.batch_size = name, topic, table, process, producer, batch_size
        self.group_id = group_id
        self.consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group_id,
                "client.id": f"{group_id}-{name}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # A worker killed with -9 holds its partitions until its session times out: keep it short.
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 2_000,
            }
        )
        self.metrics = metrics.ConsumerMetrics(service, group_id, [topic])
        self.error: BaseException | None = None
        self.last_progress = time.monotonic()  # of the last poll, with or without records
        self._thread = threading.Thread(target=self._run, name=f"{service}-{name}", daemon=True)
        self._stop = threading.Event()

    def _assigned(self, _consumer, partitions) -> None:
        self.table.restore([tp.partition for tp in partitions])

    def _revoked(self, _consumer, partitions) -> None:
        self.table.drop([tp.partition for tp in partitions])

    def start(self) -> None:
        self.consumer.subscribe([self.topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.poll_once()
        except BaseException as exc:  # the health watch reports it; the process does not hide it
            self.error = exc
            log.exception("stage failed", stage=self.name)
        finally:
            self.consumer.close()  # leaves the group: the partitions move at once

    def poll_once(self) -> None:
        messages = self.consumer.consume(self.batch_size, 0.5)
        self.last_progress = time.monotonic()
        self.metrics.polled(self.consumer)
        if not messages:
            return
        self.metrics.consumed(self.topic, len(messages))
        records = []
        for msg in messages:
            if (err := msg.error()) is not None:
                if err.fatal():
                    raise confluent_kafka.KafkaException(err)
                log.warning("kafka consume error", stage=self.name, error=err.str())
                continue
            records.append(msg)
        self.process(records, self)
        self.producer.flush()  # 1. outputs (and dead letters) acked
        self.table.flush()  # 2. then the state that produced them
        try:
            self.consumer.commit(asynchronous=False)  # 3. then the input offsets
        except confluent_kafka.KafkaException as exc:  # e.g. a rebalance: the records are redone, idempotently
            log.warning("commit failed; the batch will be reprocessed", stage=self.name, error=str(exc))

    def each(self, records: list, handle: Callable[[int, bytes | None, bytes], None]) -> None:
        """handle(partition, key, value) per record; a record it fails on is dead-lettered."""
        for msg in records:
            try:
                handle(msg.partition(), msg.key(), msg.value())
            except Exception as exc:  # one bad record must not stop the stage (or, replayed, every restart)
                self.dead_letter(msg, exc)

    def dead_letter(self, msg, exc: BaseException) -> None:
        topic, partition, offset, error = msg.topic(), msg.partition(), msg.offset(), f"{type(exc).__name__}: {exc}"
        letter = ops_events.DeadLetter(source_topic=topic, source_partition=partition, source_offset=offset, key=msg.key() or b"", value=msg.value() or b"", error=error[:4000], consumer_group=self.group_id)
        letter.failed_at.GetCurrentTime()
        log.warning("dead-lettered record", stage=self.name, topic=topic, partition=partition, offset=offset, error=error[:200])
        self.metrics.dead_lettered(topic)
        self.producer.produce(topics.DEAD_LETTERS, f"{topic}/{partition}/{offset}", letter)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    @property
    def alive(self) -> bool:
        return self.error is None and self._thread.is_alive()
