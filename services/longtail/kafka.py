"""Kafka on confluent-kafka: a producer that never loses a delivery report, and a batch consumer
loop that commits only after processing and dead-letters what it cannot process.

Values are protobuf messages; the topic registry (longtail.topics) says which type each topic holds.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import confluent_kafka
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from google.protobuf.message import DecodeError, Message
from prometheus_client import Counter

from longtail import metrics
from longtail.log import get_logger
from longtail.topics import DEAD_LETTERS, Topic

log = get_logger(__name__)


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge one or more produced messages."""


class RecordError(ValueError):
    """Raised by a handler for a record whose content is invalid: the record is dead-lettered."""


def _headers(value: Message) -> list[tuple[str, bytes]]:
    return [("content-type", b"application/x-protobuf"), ("message-type", value.DESCRIPTOR.full_name.encode())]


class Producer:
    """acks=all + idempotence; delivery reports served by a background poller thread.

    `produce` applies backpressure (waits) when librdkafka's local queue is full instead of growing
    memory; `flush` raises DeliveryError if anything produced since the last flush was not acked.
    """

    def __init__(self, bootstrap_servers: str, service: str, **conf: Any) -> None:
        self.service = service
        base = {
            "bootstrap.servers": bootstrap_servers,
            "client.id": f"{service}@{socket.gethostname()}",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 200_000,
            "queue.buffering.max.kbytes": 262_144,
            "message.max.bytes": 8 * 1024 * 1024,
        }
        base.update(conf)
        self._producer = confluent_kafka.Producer(base)
        self._failures: list[str] = []
        self._lock = threading.Lock()
        self._produced: dict[str, Counter] = {}  # topic -> metric child, resolved once (label lookup is not free per message)
        self._errors: dict[str, Counter] = {}
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_forever, name=f"{service}-kafka-poll", daemon=True)
        self._poller.start()

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def _counters(self, topic: str) -> tuple[Counter, Counter]:
        if topic not in self._produced:
            self._produced[topic] = metrics.KAFKA_PRODUCED.labels(self.service, topic)
            self._errors[topic] = metrics.KAFKA_DELIVERY_ERRORS.labels(self.service, topic)
        return self._produced[topic], self._errors[topic]

    def _report(self, user_callback: Callable[[KafkaError | None, Any], None] | None):
        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            ok, failed = self._counters(msg.topic())
            if err is None:
                ok.inc()
            else:
                failed.inc()
                with self._lock:
                    self._failures.append(f"{msg.topic()}: {err.str()}")
                log.error("kafka delivery failed", topic=msg.topic(), error=err.str())
            if user_callback is not None:
                user_callback(err, msg)

        return on_delivery

    def produce(
        self,
        topic: Topic,
        key: str | bytes | None,
        value: Message | None,
        on_delivery: Callable[[KafkaError | None, Any], None] | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Queue one protobuf value (None = tombstone) for `topic`, keyed by the entity id."""
        if value is not None and not isinstance(value, topic.value_type):
            raise TypeError(f"{topic.name} holds {topic.value_type.__name__}, not {type(value).__name__}")
        data = None if value is None else value.SerializeToString()
        hdrs = list(headers) + (_headers(value) if value is not None else [])
        self.produce_bytes(topic.name, key, data, on_delivery, hdrs)

    def produce_bytes(
        self,
        topic: str,
        key: str | bytes | None,
        data: bytes | None,
        on_delivery: Callable[[KafkaError | None, Any], None] | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        callback = self._report(on_delivery)
        while True:
            try:
                self._producer.produce(topic, data, key, on_delivery=callback, headers=list(headers) or None)
                return
            except BufferError:
                # Local queue full: wait for acks instead of buffering without bound (backpressure).
                time.sleep(0.005)

    def produce_partition(self, topic: str, partition: int, key: str | bytes | None, data: bytes | None) -> None:
        """Raw bytes to an explicit partition (changelogs follow their input's partitions)."""
        callback = self._report(None)
        while True:
            try:
                self._producer.produce(topic, data, key, partition=partition, on_delivery=callback)
                return
            except BufferError:
                time.sleep(0.005)

    async def produce_and_wait(self, topic: Topic, key: str | bytes | None, value: Message | None) -> None:
        """Produce and return only once Kafka acked it (raises DeliveryError otherwise)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle(err: KafkaError | None, _msg: Any) -> None:
            def apply() -> None:
                if done.done():
                    return
                if err is None:
                    done.set_result(None)
                else:
                    done.set_exception(DeliveryError(f"{topic.name}: {err.str()}"))

            loop.call_soon_threadsafe(apply)

        self.produce(topic, key, value, on_delivery=settle)
        await done

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self._producer.flush(timeout)
        with self._lock:
            failures, self._failures = self._failures, []
        if remaining:
            failures.append(f"{remaining} message(s) still unacknowledged after {timeout}s")
        if failures:
            raise DeliveryError("; ".join(failures[:10]) + (f" (+{len(failures) - 10} more)" if len(failures) > 10 else ""))

    def close(self, timeout: float = 30.0) -> None:
        try:
            self.flush(timeout)
        finally:
            self._stop.set()
            self._poller.join(timeout=1.0)


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: Any  # the topic's protobuf type; None for a tombstone
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()


Handler = Callable[[list[Record]], None]


class BatchConsumer:
    """Consume in batches, process, then commit (at-least-once).

    - A record that does not decode as its topic's protobuf type is dead-lettered.
    - If `handler(batch)` raises, the batch is retried one record at a time; a record whose handler
      raises ValueError (RecordError, ...) or DecodeError is dead-lettered and the loop keeps going.
      Any other exception (a database, object store or Triton outage) is retried for that record
      with backoff for up to `outage_patience_s` -- a dependency restarting for a few seconds must
      not cost a process restart (in Kubernetes, a crash loop's growing back-off) -- and then
      propagates without committing, so the batch is reprocessed after a restart rather than
      thrown away.
    - Dead letters are flushed (acked) before offsets are committed: nothing is lost in between.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        topics: Iterable[Topic],
        handler: Handler,
        dead_letters: Producer,
        *,
        batch_size: int = 500,
        poll_timeout: float = 0.5,
        lag_interval: float = 10.0,
        outage_patience_s: float = 60.0,
        **conf: Any,
    ) -> None:
        self.group_id = group_id
        self.outage_patience_s = outage_patience_s
        self.topics = {t.name: t for t in topics}
        self.handler = handler
        self.dead_letters = dead_letters
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        base = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "client.id": f"{group_id}@{socket.gethostname()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",  # a new group must not skip what was produced before it
            "enable.partition.eof": False,
            "fetch.max.bytes": 64 * 1024 * 1024,
        }
        base.update(conf)
        self._consumer = confluent_kafka.Consumer(base)
        self._consumer.subscribe(list(self.topics))
        # Labelled with the dead-letter producer's service name (the group id may be per run).
        self.metrics = metrics.ConsumerMetrics(dead_letters.service, group_id, list(self.topics), lag_interval)
        self.dead_lettered = 0

    def poll_once(self) -> int:
        """Consume, process and commit at most one batch; returns how many records it saw."""
        messages = self._consumer.consume(self.batch_size, self.poll_timeout)
        self.metrics.polled(self._consumer)
        if not messages:
            return 0
        records: list[Record] = []
        dead = 0
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal() or not err.retriable():
                    raise KafkaException(err)
                log.warning("kafka consume error", error=err.str())
                continue
            self.metrics.consumed(msg.topic() or "")  # a message without an error has its topic
            try:
                records.append(self._decode(msg))
            except (DecodeError, ValueError) as exc:
                self._dead_letter(msg, f"cannot decode as {self.topics[msg.topic() or ''].value_type.DESCRIPTOR.full_name}: {exc}")
                dead += 1
        if records:
            try:
                self.handler(records)
            except Exception as exc:
                log.warning("batch failed, retrying record by record", error=repr(exc), size=len(records))
                dead += sum(self._handle_one(record) for record in records)
        if dead:
            self.dead_letters.flush()  # raises rather than commit past an unsaved dead letter
        self._consumer.commit(asynchronous=False)
        return len(messages)

    def _handle_one(self, record: Record) -> int:
        """One record alone: 1 if it was dead-lettered; an outage is retried (see the class)."""
        deadline, backoff = time.monotonic() + self.outage_patience_s, 0.25
        while True:
            try:
                self.handler([record])
                return 0
            except (DecodeError, ValueError) as exc:
                self._dead_letter_record(record, f"{type(exc).__name__}: {exc}")
                return 1
            except Exception as exc:
                if time.monotonic() + backoff > deadline:
                    raise
                self.metrics.outage_retried()
                log.warning("record failed, not for its content: retrying (an outage?)", error=repr(exc)[:300], topic=record.topic, partition=record.partition, offset=record.offset, retry_in_s=backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        while not stop.is_set():
            self.poll_once()

    def close(self) -> None:
        self._consumer.close()

    def _decode(self, msg: Any) -> Record:
        topic = self.topics[msg.topic()]
        raw_key = msg.key()
        value = msg.value()
        return Record(
            topic=msg.topic(),
            partition=msg.partition(),
            offset=msg.offset(),
            key=raw_key.decode("utf-8", "replace") if raw_key is not None else None,
            value=None if value is None else topic.value_type.FromString(value),
            timestamp_ms=msg.timestamp()[1],
            headers=tuple(msg.headers() or ()),
        )

    def _dead_letter(self, msg: Any, error: str) -> None:
        self._send_dead_letter(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), error)

    def _dead_letter_record(self, record: Record, error: str) -> None:
        value = None if record.value is None else record.value.SerializeToString()
        key = None if record.key is None else record.key.encode()
        self._send_dead_letter(record.topic, record.partition, record.offset, key, value, error)

    def _send_dead_letter(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, error: str) -> None:
        from longtail.ops.v1 import events_pb2

        letter = events_pb2.DeadLetter(
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            key=key or b"",
            value=value or b"",
            error=error[:4000],
            consumer_group=self.group_id,
        )
        letter.failed_at.GetCurrentTime()
        log.warning("dead-lettered record", topic=topic, partition=partition, offset=offset, error=error[:200])
        self.metrics.dead_lettered(topic)
        self.dead_lettered += 1
        self.dead_letters.produce(DEAD_LETTERS, f"{topic}/{partition}/{offset}", letter)


class ConsumerThread:
    """Polls a BatchConsumer on a daemon thread until stopped. `last_progress` feeds liveness
    watches (a poll, with or without records, is progress); `error` is what stopped it — an outage
    or a bug, after which nothing more was committed and the process should restart."""

    def __init__(self, consumer: BatchConsumer, name: str) -> None:
        self.consumer = consumer
        self.error: BaseException | None = None
        self.last_progress = time.monotonic()
        self.started = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.started = True
        self.last_progress = time.monotonic()
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self.error is None and (self._thread.is_alive() or not self.started)

    def after_poll(self) -> None:
        """Periodic work between polls, on the consumer's thread (subclasses)."""

    def before_close(self) -> None:
        """Last work after a clean stop, before the consumer closes (subclasses)."""

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.consumer.poll_once()
                self.last_progress = time.monotonic()
                self.after_poll()
            self.before_close()
        except BaseException as exc:
            self.error = exc
            log.exception("consumer thread failed", thread=self._thread.name)
        finally:
            try:
                self.consumer.close()
            except Exception:
                pass

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


class TopicFollower:
    """Reads whole topics from the beginning on a thread (no consumer group offsets: every
    replica needs all of it) and hands decoded values to the event loop. `caught_up` is set once
    the first pass reached the end of every partition. A handler gets (key, value): the value of
    its topic's message type, None for a tombstone."""

    def __init__(self, bootstrap: str, handlers: dict[Topic, Callable[[str | None, Any], object]], loop: asyncio.AbstractEventLoop, name: str = "follower") -> None:
        self.handlers = {t.name: (t, h) for t, h in handlers.items()}
        self.loop = loop
        self.caught_up = asyncio.Event()
        self._stop = threading.Event()
        self._consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": f"{name}-follower-{uuid.uuid4().hex}", "enable.auto.commit": False, "enable.partition.eof": True})
        self._thread = threading.Thread(target=self._run, name=f"{name}-follower", daemon=True)

    def start(self) -> None:
        metadata = self._consumer.list_topics(timeout=30).topics
        assignment = [TopicPartition(name, p, OFFSET_BEGINNING) for name in self.handlers for p in metadata[name].partitions]
        self._remaining = {(tp.topic, tp.partition) for tp in assignment}
        self._consumer.assign(assignment)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            # Wait for one record, then take what else is there: consume(500, 0.1) alone would
            # hold a lone record (a trigger to beam to the fleet) until the 0.1 s timeout.
            first = self._consumer.poll(0.1)
            if first is None:
                continue
            for msg in (first, *self._consumer.consume(500, 0)):
                err = msg.error()
                if err is not None:
                    if err.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        self._remaining.discard((msg.topic(), msg.partition()))
                        if not self._remaining:
                            self.loop.call_soon_threadsafe(self.caught_up.set)
                    continue
                topic, handler = self.handlers[msg.topic() or ""]  # a message without an error has its topic
                raw = msg.value()
                try:
                    value = None if raw is None else topic.value_type.FromString(raw)
                except DecodeError as exc:
                    log.warning("undecodable record skipped", topic=msg.topic(), offset=msg.offset(), error=str(exc))
                    continue
                raw_key = msg.key()
                key = raw_key.decode() if raw_key is not None else None
                self.loop.call_soon_threadsafe(_safe, handler, key, value)
        self._consumer.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _safe(handler: Callable, key, value) -> None:
    try:
        handler(key, value)
    except Exception:
        log.exception("follower handler failed", key=key)


# What a broker answers about a topic created a moment ago, before the cluster's metadata has
# reached it (seen in CI on the 3-node cluster): retried while a table is restored, not fatal.
NOT_YET_KNOWN = frozenset(
    {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
    }
)


def watermarks(consumer: confluent_kafka.Consumer, partition: TopicPartition, patience_s: float = 60.0) -> tuple[int, int]:
    """(low, high) offsets of a partition, waiting up to `patience_s` for a topic the cluster does
    not know everywhere yet (`NOT_YET_KNOWN`); other errors, and the last one, are raised."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=30)
            return low, high
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() not in NOT_YET_KNOWN or time.monotonic() > deadline:
                raise
            log.info("partition not known to the broker yet; retrying", topic=partition.topic, partition=partition.partition, error=error.str())
            time.sleep(0.5)


def read_time_range(bootstrap: str, topic: Topic, since_ms: int, until_ms: int, max_records: int = 0, keyed: bool = False) -> Iterator[Any]:
    """The decoded values (with `keyed`, (key, value) pairs) of `topic` whose Kafka timestamp lies
    in [since_ms, until_ms), up to each partition's end, in offset order per partition, without a
    consumer group's side effects (backtests, fleet evidence). Malformed records and tombstones are
    skipped: dead-lettering them is the live consumers' job."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": f"range-{uuid.uuid4().hex}", "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        metadata = consumer.list_topics(topic.name, timeout=10).topics[topic.name]
        if metadata.error is not None:
            return
        starts = consumer.offsets_for_times([TopicPartition(topic.name, p, since_ms) for p in metadata.partitions], timeout=10)
        assignment = []
        for tp in starts:
            _low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            if 0 <= tp.offset < high:
                assignment.append(tp)
        if not assignment:
            return
        remaining = {tp.partition for tp in assignment}
        consumer.assign(assignment)
        seen = 0
        while remaining:
            for msg in consumer.consume(500, 1.0):
                if (err := msg.error()) is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(msg.partition())
                    continue
                if msg.partition() not in remaining:
                    continue
                if msg.timestamp()[1] >= until_ms:
                    remaining.discard(msg.partition())
                    continue
                try:
                    value = topic.value_type.FromString(msg.value())
                except (DecodeError, TypeError):
                    continue
                raw_key = msg.key()
                yield (raw_key.decode() if raw_key is not None else None, value) if keyed else value
                seen += 1
                if max_records and seen >= max_records:
                    return
    finally:
        consumer.close()


def start_group_at_end(bootstrap: str, group: str, topic_list: Iterable[Topic]) -> int:
    """Commit `group`'s offsets at the current end of `topic_list` (topics that do not exist yet are
    left alone), so a *new* group skips the history instead of starting at the earliest record.
    For consumers whose state is new too (e.g. a demo run's fresh database). Returns the partitions set."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        existing = consumer.list_topics(timeout=10).topics
        offsets = []
        for topic in topic_list:
            metadata = existing.get(topic.name)
            if metadata is None or metadata.error is not None:
                continue
            for p in metadata.partitions:
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic.name, p), timeout=10)
                offsets.append(TopicPartition(topic.name, p, high))
        if offsets:
            consumer.commit(offsets=offsets, asynchronous=False)
        return len(offsets)
    finally:
        consumer.close()
